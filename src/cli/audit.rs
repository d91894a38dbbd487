//! `audit tail`, `audit verify`, `audit heads`: reading the audit trail, never changing it.

use clap::Subcommand;

use crate::config::{DatabaseUrl, Settings};
use crate::domain::{Clock, SystemClock};
use crate::startup::{Backends, new_metrics, open_backends};

use super::Failure;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the latest audit events as JSON lines, oldest first.
    Tail {
        /// Keep printing new events as they are written.
        #[arg(long)]
        follow: bool,
        /// How many of the latest events to print first.
        #[arg(long, default_value_t = 20)]
        lines: u32,
    },
    /// Check the audit trail's hash chain for gaps and tampering, and that its newest head
    /// signature is recent (at most two heartbeats old); exit 1 on any finding.
    Verify,
    /// Print the head signatures as JSON lines, oldest first, to keep them outside the database
    /// (a log shipper): a trail cut at its end, signatures included, then no longer matches what
    /// was shipped.
    Heads {
        /// Keep printing the newest signature whenever it changes (heartbeats included).
        #[arg(long)]
        follow: bool,
    },
}

pub(super) async fn run(settings: Settings, command: AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::Tail { follow, lines } => tail(settings, follow, lines).await,
        AuditCommand::Verify => verify(settings).await,
        AuditCommand::Heads { follow } => heads(settings, follow).await,
    }
}

/// Opens the backends for a command that only reads: it applies no migration and creates no
/// data directory, so pointing it at the wrong place (or at a database not yet migrated) cannot
/// change anything; it fails and says so instead.
async fn open_for_reading(settings: &Settings) -> Result<Backends, Failure> {
    if let DatabaseUrl::Embedded(path) = &settings.storage.database_url
        && !path.exists()
    {
        return Err(Failure::other(format!(
            "there is no database at {}; run `portcullis migrate` to create it",
            path.display()
        )));
    }
    Ok(open_backends(settings, false).await?)
}

/// A failure to read the audit trail; on a database never migrated, that is the likely cause.
fn unreadable_trail(error: crate::store::StoreError) -> Failure {
    Failure::other(format!(
        "cannot read the audit trail ({error}); if the database is new, run `portcullis migrate`"
    ))
}

async fn tail(settings: Settings, follow: bool, lines: u32) -> Result<(), Failure> {
    let backends = open_for_reading(&settings).await?;
    let audit = crate::audit::Audit::new(backends.audit.clone(), new_metrics()?)
        .with_head_keys(backends.audit_head_keys.clone());
    let mut position =
        (audit.last_position().await.map_err(unreadable_trail)? - i64::from(lines)).max(0);
    loop {
        let batch = audit.after(position, 500).await.map_err(unreadable_trail)?;
        for (seq, event) in &batch {
            let line = serde_json::to_string(event).map_err(|e| Failure::other(e.to_string()))?;
            println!("{line}");
            position = *seq;
        }
        if batch.is_empty() {
            if !follow {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

async fn verify(settings: Settings) -> Result<(), Failure> {
    let backends = open_for_reading(&settings).await?;
    let audit = crate::audit::Audit::new(backends.audit.clone(), new_metrics()?)
        .with_head_keys(backends.audit_head_keys.clone());
    let report = audit.verify(SystemClock.now()).await.map_err(unreadable_trail)?;
    for note in &report.notes {
        println!("note: {note}");
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    if report.problems.is_empty() {
        let signed_at = report
            .signed_at
            .map(|at| format!(" at {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            .unwrap_or_default();
        println!(
            "audit trail intact: {} events; head at position {} with hash {}; signed through \
             position {}{signed_at}",
            report.events, report.head_seq, report.head_hash, report.signed_through
        );
        Ok(())
    } else {
        Err(Failure::other(format!(
            "audit trail broken: {} problems in {} events",
            report.problems.len(),
            report.events
        )))
    }
}

/// One head signature as a JSON line.
fn head_line(signature: &crate::audit::chain::HeadSignature) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    serde_json::json!({
        "seq": signature.seq,
        "hash": hex(&signature.hash),
        "signed_at": signature.signed_at,
        "previous": signature.previous.as_deref().map(hex),
        "signature": hex(&signature.signature),
    })
    .to_string()
}

async fn heads(settings: Settings, follow: bool) -> Result<(), Failure> {
    let backends = open_for_reading(&settings).await?;
    if backends.audit_head_keys.signing.is_none() {
        eprintln!("note: the head is not signed: there is no master key");
    }
    let mut after = -1;
    let mut last = None;
    loop {
        let batch = backends.audit.head_signatures(after, 500).await.map_err(unreadable_trail)?;
        for signature in &batch {
            println!("{}", head_line(signature));
            after = signature.seq;
        }
        if let Some(newest) = batch.last() {
            last = Some(newest.clone());
        }
        if batch.is_empty() {
            if !follow {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            // A heartbeat renews the newest in place: print it again when it changed.
            let newest = backends.audit.newest_head_signature().await.map_err(unreadable_trail)?;
            if let Some(newest) = newest
                && last.as_ref().is_some_and(|l| l.seq == newest.seq && *l != newest)
            {
                println!("{}", head_line(&newest));
                last = Some(newest);
            }
        }
    }
}
