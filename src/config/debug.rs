//! `Debug` for the settings that hold secrets. A `Settings` is easy to log by accident (a
//! `{:?}` in an error, a `tracing` field), so its `Debug` never shows a database or Redis
//! password or the JWT secret; URLs keep everything else, so they stay useful when debugging.
//!
//! The impls destructure every field: a new field does not compile until it is listed here, so
//! each one is a deliberate choice between shown and masked.

use std::fmt;

use super::{DatabaseUrl, Settings, parse::mask_url};

/// Stands in for a secret.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded(path) => f.debug_tuple("Embedded").field(path).finish(),
            Self::Sqlite(url) => f.debug_tuple("Sqlite").field(&mask_url(url)).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&mask_url(url)).finish(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            bind,
            database_url,
            redis_url,
            redis_prefix,
            data_dir,
            jwt_secret,
            master_key,
            master_key_file,
            master_key_previous,
            issuer,
            audience,
            access_token_ttl,
            refresh_token_ttl,
            refresh_reuse_grace,
            lockout_threshold,
            lockout_window,
            lockout_duration,
            max_sessions_per_user,
            device_token_ttl,
            session_lifetime,
            lockout_max_failures,
            rate_limit_ip,
            rate_limit_account,
            rate_limit_reads,
            rate_limit_mail,
            cors_origins,
            trusted_proxies,
            argon2,
            jwt_leeway,
            password_policy,
            metrics_bind,
            log_format,
            log_filter,
            request_timeout,
            max_connections,
            max_connections_per_ip,
            header_timeout,
            tls,
            mail,
            webauthn,
            client_id,
            key_publish_ahead,
            key_rotate_every,
            refresh_cookie,
            client_ip_header,
        } = self;
        f.debug_struct("Settings")
            .field("bind", bind)
            .field("database_url", database_url)
            .field("redis_url", &redis_url.as_deref().map(mask_url))
            .field("redis_prefix", redis_prefix)
            .field("data_dir", data_dir)
            .field("jwt_secret", &jwt_secret.as_ref().map(|_| Redacted))
            .field("master_key", &master_key.as_ref().map(|_| Redacted))
            .field("master_key_file", master_key_file)
            .field("master_key_previous", &master_key_previous.as_ref().map(|_| Redacted))
            .field("issuer", issuer)
            .field("audience", audience)
            .field("access_token_ttl", access_token_ttl)
            .field("refresh_token_ttl", refresh_token_ttl)
            .field("refresh_reuse_grace", refresh_reuse_grace)
            .field("lockout_threshold", lockout_threshold)
            .field("lockout_window", lockout_window)
            .field("lockout_duration", lockout_duration)
            .field("max_sessions_per_user", max_sessions_per_user)
            .field("device_token_ttl", device_token_ttl)
            .field("session_lifetime", session_lifetime)
            .field("lockout_max_failures", lockout_max_failures)
            .field("rate_limit_ip", rate_limit_ip)
            .field("rate_limit_account", rate_limit_account)
            .field("rate_limit_reads", rate_limit_reads)
            .field("rate_limit_mail", rate_limit_mail)
            .field("cors_origins", cors_origins)
            .field("trusted_proxies", trusted_proxies)
            .field("argon2", argon2)
            .field("jwt_leeway", jwt_leeway)
            .field("password_policy", password_policy)
            .field("metrics_bind", metrics_bind)
            .field("log_format", log_format)
            .field("log_filter", log_filter)
            .field("request_timeout", request_timeout)
            .field("max_connections", max_connections)
            .field("max_connections_per_ip", max_connections_per_ip)
            .field("header_timeout", header_timeout)
            // Paths only: the key itself is never read into the settings.
            .field("tls", tls)
            // Masks the SMTP credentials.
            .field("mail", mail)
            .field("webauthn", webauthn)
            .field("client_id", client_id)
            .field("key_publish_ahead", key_publish_ahead)
            .field("key_rotate_every", key_rotate_every)
            .field("refresh_cookie", refresh_cookie)
            .field("client_ip_header", client_ip_header)
            .finish()
    }
}
