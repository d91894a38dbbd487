//! The rules of the posture report, one function per finding, grouped as the report reads:
//! transport, secrets at rest, tokens, guessing.

use std::path::PathBuf;

use secrecy::ExposeSecret;

use super::{
    ARGON2_MINIMUMS, DAY, Finding, HOUR, MINUTE, Severity, exceeds_per_minute, finding, host_of,
    human, is_loopback_host, normalise, off_loopback, public,
};
use crate::config::{DatabaseUrl, Rate, Settings};
use crate::domain::PasswordPolicy;

/// One rule: the findings it makes of `settings` (none when the setting is sound).
pub(super) type Rule = fn(&Settings) -> Vec<Finding>;

/// Every rule, in the order their findings are listed within a severity.
pub(super) const RULES: &[Rule] = &[
    plain_http,
    metrics_public,
    trusted_proxies_broad,
    cors_origins,
    redis_plaintext,
    redis_cluster_plaintext,
    smtp_plaintext,
    database_tls_optional,
    master_key_missing,
    master_key_in_data_dir,
    master_key_previous_set,
    provider_off,
    jwt_hs256,
    jwt_secret_short,
    access_token_ttl_long,
    jwt_leeway_long,
    refresh_reuse_grace_long,
    session_lifetime_long,
    argon2_below_owasp,
    password_policy_composition,
    lockout_threshold_high,
    lockout_max_failures_high,
    rate_limit_ip_high,
    rate_limit_account_high,
    rate_limit_reads_high,
];

// Transport.

fn plain_http(s: &Settings) -> Vec<Finding> {
    let found = public(s) && s.http.tls().is_none() && s.http.trusted_proxies.is_empty();
    finding(found, "plain_http", "PORTCULLIS_TLS_CERT", Severity::High, || {
        format!(
            "{} is not loopback and serves plain HTTP: set TLS_CERT and TLS_KEY, or serve \
             behind a TLS proxy listed in TRUSTED_PROXIES (passwords and tokens cross the \
             network in clear)",
            s.http.bind
        )
    })
}

fn metrics_public(s: &Settings) -> Vec<Finding> {
    let found = public(s) && s.http.metrics_bind.is_none();
    finding(found, "metrics_public", "PORTCULLIS_METRICS_BIND", Severity::Medium, || {
        "/metrics is served on the public listener: set METRICS_BIND to a loopback or internal \
         address"
            .to_owned()
    })
}

fn trusted_proxies_broad(s: &Settings) -> Vec<Finding> {
    let broad = s.http.trusted_proxies.iter().find(|net| match net {
        ipnet::IpNet::V4(v4) => v4.prefix_len() < 8,
        ipnet::IpNet::V6(v6) => v6.prefix_len() < 16,
    });
    let id = "trusted_proxies_broad";
    finding(broad.is_some(), id, "PORTCULLIS_TRUSTED_PROXIES", Severity::Medium, || {
        format!(
            "{} trusts {} from much of the Internet, so clients can pick the IP their budgets \
             are counted against: list only your proxies' addresses",
            broad.map(ToString::to_string).unwrap_or_default(),
            s.http.client_ip_header.as_str()
        )
    })
}

/// Each CORS origin: a pattern (never matched as one), `null`, or plain HTTP off loopback.
fn cors_origins(s: &Settings) -> Vec<Finding> {
    s.http.cors_origins.iter().flat_map(|origin| cors_origin(origin)).collect()
}

fn cors_origin(origin: &str) -> Vec<Finding> {
    let variable = "PORTCULLIS_CORS_ORIGINS";
    if origin.contains('*') {
        return finding(true, "cors_wildcard", variable, Severity::Medium, || {
            format!(
                "{origin} is not a wildcard here (origins match exactly): list each origin that \
                 needs the API, never a pattern"
            )
        });
    }
    if origin.eq_ignore_ascii_case("null") || host_of(origin) == Some("null") {
        return finding(true, "cors_null_origin", variable, Severity::High, || {
            format!(
                "{origin}: sandboxed frames and file: pages of any site send Origin null; remove it"
            )
        });
    }
    let insecure = origin.starts_with("http://") && !host_of(origin).is_some_and(is_loopback_host);
    finding(insecure, "cors_insecure_origin", variable, Severity::Medium, || {
        format!(
            "{origin} is plain HTTP: anyone on its network can inject script that reads tokens; \
             allow its https:// origin instead"
        )
    })
}

// Redis and PostgreSQL reached over the network in clear: sessions, refresh-token hashes and
// password hashes travel unencrypted, and libpq's default `sslmode=prefer` does not stop a
// machine in the middle (PostgreSQL manual, "SSL Support").

fn redis_plaintext(s: &Settings) -> Vec<Finding> {
    let url = s.storage.redis_url.as_deref().unwrap_or_default();
    let found = url.starts_with("redis://") && off_loopback(url);
    finding(found, "redis_plaintext", "PORTCULLIS_REDIS_URL", Severity::Medium, || {
        "Redis is reached over the network without TLS: use a rediss:// URL".to_owned()
    })
}

fn redis_cluster_plaintext(s: &Settings) -> Vec<Finding> {
    let seeds = s.storage.redis_url.as_deref().and_then(|u| u.strip_prefix("redis+cluster://"));
    let found = seeds.is_some_and(|seeds| seeds.split(',').any(off_loopback));
    finding(found, "redis_plaintext", "PORTCULLIS_REDIS_URL", Severity::Medium, || {
        "the Redis Cluster is reached over the network without TLS: keep its nodes on a \
         private network"
            .to_owned()
    })
}

fn smtp_plaintext(s: &Settings) -> Vec<Finding> {
    let url = s.mail.smtp_url.as_deref().unwrap_or_default();
    let found = url.starts_with("smtp://") && off_loopback(url);
    finding(found, "smtp_plaintext", "PORTCULLIS_SMTP_URL", Severity::Medium, || {
        "mail (reset links among it) leaves in clear over the network: use smtps:// or \
         smtp+starttls://"
            .to_owned()
    })
}

fn database_tls_optional(s: &Settings) -> Vec<Finding> {
    let required = ["sslmode=require", "sslmode=verify-ca", "sslmode=verify-full"];
    let found = matches!(&s.storage.database_url, DatabaseUrl::Postgres(url)
        if off_loopback(url) && !required.iter().any(|mode| url.contains(mode)));
    finding(found, "database_tls_optional", "PORTCULLIS_DATABASE_URL", Severity::Medium, || {
        "PostgreSQL is reached over the network without required TLS: add sslmode=verify-full \
         to DATABASE_URL"
            .to_owned()
    })
}

// Secrets at rest.

fn master_key_missing(s: &Settings) -> Vec<Finding> {
    let found = s.secrets.master_key.is_none()
        && matches!(s.storage.database_url, DatabaseUrl::Postgres(_));
    finding(found, "master_key_missing", "PORTCULLIS_MASTER_KEY", Severity::High, || {
        "signing keys and server secrets are stored in clear in PostgreSQL, so a database \
         backup can mint tokens: set MASTER_KEY or MASTER_KEY_FILE"
            .to_owned()
    })
}

/// On the embedded default the generated key beside the database is the documented
/// arrangement; with a database of its own the key should live apart from the service's data.
fn master_key_in_data_dir(s: &Settings) -> Vec<Finding> {
    let embedded_default = matches!(s.storage.database_url, DatabaseUrl::Embedded(_));
    let file = master_key_file(s).filter(|file| {
        !embedded_default && normalise(file).starts_with(normalise(&s.storage.data_dir))
    });
    let id = "master_key_in_data_dir";
    finding(file.is_some(), id, "PORTCULLIS_MASTER_KEY_FILE", Severity::Medium, || {
        format!(
            "the master key {} is inside DATA_DIR, so a backup of the directory holds the key \
             with the data: keep MASTER_KEY_FILE outside it (a secrets mount)",
            file.unwrap_or_default().display()
        )
    })
}

/// Where the key is read from (see `startup::files::sealer`): the configured file, or the one
/// generated into the data directory for SQLite without a configured key.
fn master_key_file(s: &Settings) -> Option<PathBuf> {
    match (&s.secrets.master_key_file, &s.storage.database_url) {
        (Some(file), _) => Some(file.clone()),
        (None, DatabaseUrl::Embedded(_) | DatabaseUrl::Sqlite(_))
            if s.secrets.master_key.is_none() =>
        {
            Some(s.storage.data_dir.join("master.key"))
        }
        _ => None,
    }
}

fn master_key_previous_set(s: &Settings) -> Vec<Finding> {
    let found = s.secrets.master_key_previous.is_some();
    finding(
        found,
        "master_key_previous_set",
        "PORTCULLIS_MASTER_KEY_PREVIOUS",
        Severity::Low,
        || {
            "the previous master key still opens old copies of the secrets: unset \
         MASTER_KEY_PREVIOUS once every instance has started with the new key"
                .to_owned()
        },
    )
}

// Tokens. RFC 8725 §3.5 and RFC 7518 §3.2: an HMAC key needs the entropy of the hash.

fn provider_off(s: &Settings) -> Vec<Finding> {
    finding(!s.tokens.provider(), "provider_off", "PORTCULLIS_ISSUER", Severity::Low, || {
        "ISSUER is a name, not the service's URL: the OpenID provider and the pages are off \
         (/oauth2/* and the pages answer 404); set it to the public URL to turn them on"
            .to_owned()
    })
}

fn jwt_hs256(s: &Settings) -> Vec<Finding> {
    finding(s.tokens.secret.is_some(), "jwt_hs256", "PORTCULLIS_JWT_SECRET", Severity::Low, || {
        "HS256 shares the signing secret with every verifier, and any of them can mint tokens: \
         unset JWT_SECRET to sign with EdDSA and publish the JWKS"
            .to_owned()
    })
}

fn jwt_secret_short(s: &Settings) -> Vec<Finding> {
    let bytes = s.tokens.secret.as_ref().map_or(usize::MAX, |k| k.expose_secret().len());
    finding(bytes < 64, "jwt_secret_short", "PORTCULLIS_JWT_SECRET", Severity::Low, || {
        format!(
            "the secret is {bytes} bytes: use at least 64 random characters (e.g. `openssl rand \
             -hex 32`), so that text encoding still leaves 256 bits"
        )
    })
}

fn access_token_ttl_long(s: &Settings) -> Vec<Finding> {
    let ttl = s.tokens.access_ttl;
    let id = "access_token_ttl_long";
    finding(ttl > HOUR, id, "PORTCULLIS_ACCESS_TOKEN_TTL", Severity::Medium, || {
        format!(
            "access tokens live {}: a revoked session's token stays valid at other verifiers \
             until exp; keep it at 1h or less (15m by default)",
            human(ttl)
        )
    })
}

fn jwt_leeway_long(s: &Settings) -> Vec<Finding> {
    let leeway = s.tokens.leeway;
    finding(leeway > MINUTE, "jwt_leeway_long", "PORTCULLIS_JWT_LEEWAY", Severity::Low, || {
        format!(
            "{} of leeway extends every token past its exp: RFC 7519 §4.1.4 allows a small one \
             for clock skew; keep it at 60s or less",
            human(leeway)
        )
    })
}

fn refresh_reuse_grace_long(s: &Settings) -> Vec<Finding> {
    let grace = s.tokens.refresh_reuse_grace;
    let (id, variable) = ("refresh_reuse_grace_long", "PORTCULLIS_REFRESH_REUSE_GRACE");
    finding(grace > MINUTE, id, variable, Severity::Medium, || {
        format!(
            "a rotated refresh token is accepted for {} without revoking the session, so a \
             stolen one can be replayed (RFC 9700 §4.14.2): keep it at 60s or less",
            human(grace)
        )
    })
}

fn session_lifetime_long(s: &Settings) -> Vec<Finding> {
    let lifetime = s.accounts.session_lifetime;
    let (id, variable) = ("session_lifetime_long", "PORTCULLIS_SESSION_LIFETIME");
    finding(lifetime > 90 * DAY, id, variable, Severity::Low, || {
        format!(
            "a session lasts {} without a new login: NIST SP 800-63B asks reauthentication at \
             least every 30 days; keep it at 90d or less",
            human(lifetime)
        )
    })
}

// Guessing.

fn argon2_below_owasp(s: &Settings) -> Vec<Finding> {
    let argon2 = s.argon2;
    let strong_enough = ARGON2_MINIMUMS.iter().any(|&(memory, iterations)| {
        argon2.memory_kib >= memory && argon2.iterations >= iterations
    });
    let (id, variable) = ("argon2_below_owasp", "PORTCULLIS_ARGON2_MEMORY_KIB");
    finding(!strong_enough, id, variable, Severity::Medium, || {
        format!(
            "Argon2id m={} KiB, t={} is below OWASP's minimum: use m=19456 with t=2 (or 47104/1, \
             12288/3, 9216/4, 7168/5)",
            argon2.memory_kib, argon2.iterations
        )
    })
}

fn password_policy_composition(s: &Settings) -> Vec<Finding> {
    let found = s.accounts.password_policy == PasswordPolicy::Composition;
    let (id, variable) = ("password_policy_composition", "PORTCULLIS_PASSWORD_POLICY");
    finding(found, id, variable, Severity::Low, || {
        "composition rules push users to predictable passwords and NIST SP 800-63B forbids \
         them: set PASSWORD_POLICY=nist (15 characters, blocklist kept)"
            .to_owned()
    })
}

fn lockout_threshold_high(s: &Settings) -> Vec<Finding> {
    let threshold = s.lockout.threshold;
    let (id, variable) = ("lockout_threshold_high", "PORTCULLIS_LOCKOUT_THRESHOLD");
    finding(threshold > 20, id, variable, Severity::Medium, || {
        format!(
            "{threshold} failures before a lock leaves lockout nearly off: keep it at 20 or less \
             (5 by default)"
        )
    })
}

fn lockout_max_failures_high(s: &Settings) -> Vec<Finding> {
    let most = s.lockout.max_failures;
    let (id, variable) = ("lockout_max_failures_high", "PORTCULLIS_LOCKOUT_MAX_FAILURES");
    finding(most > 100, id, variable, Severity::Medium, || {
        format!(
            "{most} consecutive failures are allowed in all: NIST SP 800-63B §5.2.2 allows at \
             most 100"
        )
    })
}

fn rate_limit_ip_high(s: &Settings) -> Vec<Finding> {
    let variable = "PORTCULLIS_RATE_LIMIT_IP";
    budget_high("rate_limit_ip_high", variable, s.limits.ip, (1_000, "30"), Severity::Medium)
}

fn rate_limit_account_high(s: &Settings) -> Vec<Finding> {
    let (id, variable) = ("rate_limit_account_high", "PORTCULLIS_RATE_LIMIT_ACCOUNT");
    budget_high(id, variable, s.limits.account, (100, "10"), Severity::Medium)
}

fn rate_limit_reads_high(s: &Settings) -> Vec<Finding> {
    let (id, variable) = ("rate_limit_reads_high", "PORTCULLIS_RATE_LIMIT_READS");
    budget_high(id, variable, s.limits.reads, (10_000, "600"), Severity::Low)
}

/// A budget far above its default: more than `most` a minute.
fn budget_high(
    id: &'static str,
    variable: &'static str,
    rate: Rate,
    (most, default): (u64, &str),
    severity: Severity,
) -> Vec<Finding> {
    finding(exceeds_per_minute(rate, most), id, variable, severity, || {
        format!(
            "{} requests per {}s is far above the default ({default}/min): keep it at {most}/min \
             or less",
            rate.count,
            rate.period.as_secs()
        )
    })
}
