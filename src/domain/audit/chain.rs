//! The audit trail's hash chain, and its verification.
//!
//! Each event is hashed with its position and the previous event's hash:
//! `hash = SHA-256(previous hash || position || canonical event)`. Editing, removing, inserting
//! or reordering an event changes every hash after it, and the chain's head (the last position
//! and hash, kept apart) shows events cut from the end. The chain proves the trail has not been
//! changed since it was written, against anyone who cannot also rewrite every later hash and the
//! head; the head's signatures (see `HeadSignature`), made with a key the database never holds and
//! renewed at least once a minute, hold against that too, and exported elsewhere (`audit heads`)
//! against someone who can also delete them.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::AuditEvent;

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The exact bytes that are hashed for an event: a JSON array of its fields in a fixed order,
/// times in milliseconds, so that the same event always gives the same bytes. The actor and the
/// client, added later, are appended only when there is one, so events written before them hash
/// as they did; with a client, the actor's place is always there (`null` without one), so that
/// an actor can never pass for a client.
fn canonical(event: &AuditEvent) -> Vec<u8> {
    let mut fields = serde_json::json!([
        event.id.to_string(),
        event.kind.as_str(),
        event.at.timestamp_millis(),
        event.user_id.map(|u| u.to_string()),
        event.email,
        event.ip,
        event.user_agent,
        event.request_id,
        event.outcome.as_str(),
        event.detail,
    ]);
    if let Some(fields) = fields.as_array_mut() {
        let actor = event.actor_id.map(|actor| actor.to_string());
        if let Some(client) = &event.client_id {
            fields.push(serde_json::json!(actor));
            fields.push(serde_json::json!(client));
        } else if let Some(actor) = actor {
            fields.push(serde_json::json!(actor));
        }
    }
    fields.to_string().into_bytes()
}

/// The link for `event` at position `seq` after `previous`.
pub fn link(previous: &[u8; 32], seq: i64, event: &AuditEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(seq.to_be_bytes());
    hasher.update(canonical(event));
    hasher.finalize().into()
}

/// One stored link of the chain.
#[derive(Clone, Debug)]
pub struct Link {
    pub seq: Option<i64>,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Option<Vec<u8>>,
    pub event: AuditEvent,
}

/// A signature of the chain's head at `seq`: HMAC-SHA256 under a key derived from the master
/// key, over the position, the hash of the link there, the time of signing and the signature it
/// follows (`previous`), so that the signatures form a chain of their own, and one signed at an
/// unchanged head (a heartbeat) still says when the head was last seen.
///
/// Signatures written before they were chained have no `previous` and cover the position and
/// the hash only: they are where the chain of signatures starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadSignature {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub signature: Vec<u8>,
    pub signed_at: crate::domain::Timestamp,
    /// The signature this one follows (`GENESIS` for the first); `None` before chaining.
    pub previous: Option<Vec<u8>>,
}

fn head_mac(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()))
}

/// The MAC of a signature written before chaining: the position and the hash only.
fn unlinked_mac(key: &[u8; 32], seq: i64, hash: &[u8]) -> Hmac<Sha256> {
    let mut mac = head_mac(key);
    mac.update(b"portcullis audit head v1");
    mac.update(&seq.to_be_bytes());
    mac.update(hash);
    mac
}

/// The MAC of a chained signature. Every part has a fixed length, or its length before it.
fn linked_mac(
    key: &[u8; 32],
    seq: i64,
    hash: &[u8],
    signed_at: crate::domain::Timestamp,
    previous: &[u8],
) -> Hmac<Sha256> {
    let mut mac = head_mac(key);
    mac.update(b"portcullis audit head v2");
    mac.update(&seq.to_be_bytes());
    mac.update(&(hash.len() as u64).to_be_bytes());
    mac.update(hash);
    mac.update(&signed_at.timestamp_millis().to_be_bytes());
    mac.update(&(previous.len() as u64).to_be_bytes());
    mac.update(previous);
    mac
}

/// A signature of the head at `seq` with `hash`, made at `signed_at`, following `previous` (the
/// newest signature before it, or `GENESIS`).
pub fn sign_head(
    key: &[u8; 32],
    seq: i64,
    hash: &[u8],
    signed_at: crate::domain::Timestamp,
    previous: &[u8],
) -> HeadSignature {
    let signature = linked_mac(key, seq, hash, signed_at, previous).finalize().into_bytes();
    HeadSignature {
        seq,
        hash: hash.to_vec(),
        signature: signature.to_vec(),
        signed_at,
        previous: Some(previous.to_vec()),
    }
}

/// A signature as they were made before chaining (position and hash only), for trails that
/// hold some.
pub fn sign_head_unlinked(key: &[u8; 32], seq: i64, hash: &[u8]) -> Vec<u8> {
    unlinked_mac(key, seq, hash).finalize().into_bytes().to_vec()
}

/// Whether `signature` was made with `key` over what it says (constant time).
pub fn head_signature_holds(key: &[u8; 32], signature: &HeadSignature) -> bool {
    let mac = match &signature.previous {
        Some(previous) => {
            linked_mac(key, signature.seq, &signature.hash, signature.signed_at, previous)
        }
        None => unlinked_mac(key, signature.seq, &signature.hash),
    };
    mac.verify_slice(&signature.signature).is_ok()
}

/// Checks that head signatures, read in position order, form one chain: each chained signature
/// follows the one before it; the first chained one may start afresh from `GENESIS` (after
/// signatures from before chaining, which are the chain's start); none from before chaining
/// comes after a chained one. A signature removed from the middle breaks the link after it.
#[derive(Default)]
pub struct SignatureChain {
    last: Option<HeadSignature>,
    linked: bool,
}

impl SignatureChain {
    /// The problem with `signature` coming next, if there is one.
    pub fn check(&mut self, signature: &HeadSignature) -> Option<String> {
        let problem = match (&signature.previous, &self.last) {
            (None, _) if self.linked => Some(format!(
                "position {}: a head signature without a link after linked ones",
                signature.seq
            )),
            (None, _) => None,
            (Some(previous), last) => {
                let follows = last.as_ref().is_some_and(|l| l.signature == *previous);
                let starts = !self.linked && previous[..] == GENESIS;
                (!follows && !starts).then(|| {
                    format!(
                        "position {}: the head signature does not follow the one before it \
                         (signatures removed or replaced)",
                        signature.seq
                    )
                })
            }
        };
        self.linked |= signature.previous.is_some();
        self.last = Some(signature.clone());
        problem
    }

    /// The newest signature seen.
    pub fn newest(&self) -> Option<&HeadSignature> {
        self.last.as_ref()
    }
}

/// What verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub events: u64,
    pub head_seq: i64,
    pub head_hash: String,
    /// Every break found, in chain order: position and what is wrong.
    pub problems: Vec<String>,
    /// The last position a valid head signature covers (0 when none does).
    pub signed_through: i64,
    /// When the newest head signature was made, if there is one.
    pub signed_at: Option<crate::domain::Timestamp>,
    /// When the newest event was written, if there is one.
    pub newest_event_at: Option<crate::domain::Timestamp>,
    /// What verification could not check, and why (not a break: `audit verify` still succeeds).
    pub notes: Vec<String>,
}

/// Walks the chain in batches (each starting after the last position seen), checking positions,
/// links and hashes, then the head.
pub struct Verifier {
    expected_seq: i64,
    previous: [u8; 32],
    report: Report,
}

impl Default for Verifier {
    fn default() -> Self {
        Self { expected_seq: 1, previous: GENESIS, report: Report::default() }
    }
}

impl Verifier {
    /// The position after which the next batch starts.
    pub fn last_seq(&self) -> i64 {
        self.expected_seq - 1
    }

    pub fn check(&mut self, link: &Link) {
        self.report.events += 1;
        self.report.newest_event_at = self.report.newest_event_at.max(Some(link.event.at));
        let Some(seq) = link.seq else {
            self.report.problems.push(format!("event {} is outside the chain", link.event.id));
            return;
        };
        if seq != self.expected_seq {
            self.report.problems.push(format!(
                "position {seq}: expected position {} (events missing or inserted)",
                self.expected_seq
            ));
        }
        if link.prev_hash.as_deref() != Some(&self.previous[..]) {
            self.report
                .problems
                .push(format!("position {seq}: does not link to the event before it"));
        }
        let computed = self::link(&self.previous, seq, &link.event);
        if link.hash.as_deref() != Some(&computed[..]) {
            self.report.problems.push(format!("position {seq}: the event was changed"));
        }
        // Continue from what is stored, so that one edit is reported once, not at every later link.
        self.previous =
            link.hash.as_deref().and_then(|h| <[u8; 32]>::try_from(h).ok()).unwrap_or(computed);
        self.expected_seq = seq + 1;
    }

    /// Checks the head against the last link and returns the report.
    pub fn finish(mut self, head_seq: i64, head_hash: &[u8]) -> Report {
        if head_seq != self.last_seq() || head_hash != self.previous {
            self.report.problems.push(format!(
                "the head is at position {head_seq} but the chain ends at {} (events missing at the end)",
                self.last_seq()
            ));
        }
        self.report.head_seq = head_seq;
        self.report.head_hash = head_hash.iter().map(|b| format!("{b:02x}")).collect();
        self.report
    }
}

#[cfg(test)]
mod tests;
