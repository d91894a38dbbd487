//! The use cases built on the backends: the one place that maps `Settings` onto what `auth`
//! takes (`AuthSettings`, `AccessTokenSettings`, the lockout rule, the relying party).

use std::sync::Arc;

use crate::audit::Audit;
use crate::auth::{
    Administration, AuthSettings, AuthStores, AuthorizeSettings, Clients, Limits, MailFlows,
    SecondFactors, UseCases,
};
use crate::config::Settings;
use crate::crypto::{
    AccessTokenSettings, AccessTokens, KeyedHasher, PasswordHasher, SuccessorKey, tokens,
};
use crate::domain::{Clock, FAILURE_MEMORY, LockoutPolicy};
use crate::mail::{Outbox, Templates};
use crate::metrics::Metrics;

use super::backends::Backends;
use super::errors::StartupError;

/// Builds the use cases on the backends, reading the time from `clock`.
pub async fn build_auth(
    settings: &Settings,
    backends: &Backends,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> Result<UseCases, StartupError> {
    let access = AccessTokens::load_with_clock(
        access_settings(settings),
        backends.keys.as_ref(),
        clock.clone(),
    )
    .await?;
    let successor =
        backends.keys.secret("refresh_successor_key", &tokens::random_bytes::<32>()).await?;
    let factor_key =
        backends.keys.secret("second_factor_key", &tokens::random_bytes::<32>()).await?;
    let factors = SecondFactors {
        store: backends.mfa.clone(),
        sealer: backends.sealer.clone(),
        key: KeyedHasher::new(&factor_key)?,
        webauthn: relying_party(settings),
        issuer: settings.tokens.brand_name.clone(),
    };
    Ok(UseCases::new(
        stores(backends, &metrics, clock),
        factors,
        hasher(settings, &metrics)?,
        Arc::new(access),
        SuccessorKey::new(successor),
        auth_settings(settings),
        templates(settings),
        metrics,
    ))
}

/// Account administration alone, as the command line uses it: no signing key, refresh
/// successor key or second-factor key is read from the database or created in it.
pub fn build_administration(
    settings: &Settings,
    backends: &Backends,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> Result<Administration, StartupError> {
    Ok(crate::auth::administration(
        stores(backends, &metrics, clock),
        hasher(settings, &metrics)?,
        &auth_settings(settings),
        templates(settings),
        metrics,
    ))
}

fn access_settings(settings: &Settings) -> AccessTokenSettings {
    let tokens = &settings.tokens;
    AccessTokenSettings {
        secret: tokens.secret.clone(),
        issuer: tokens.issuer.clone(),
        audience: tokens.audience.clone(),
        client_id: tokens.client_id.clone(),
        ttl: tokens.access_ttl,
        leeway: tokens.leeway,
        publish_ahead: tokens.key_publish_ahead,
        rotate_every: tokens.key_rotate_every,
    }
}

/// The client registry alone, as the command line uses it.
pub fn build_clients(backends: &Backends, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Clients {
    let audit = Audit::new(backends.audit.clone(), metrics)
        .with_head_keys(backends.audit_head_keys.clone());
    Clients::new(backends.clients.clone(), audit, clock)
}

/// The stores the use cases work on, on `backends`.
fn stores(backends: &Backends, metrics: &Arc<Metrics>, clock: Arc<dyn Clock>) -> AuthStores {
    AuthStores {
        users: backends.users.clone(),
        sessions: backends.sessions.clone(),
        limiter: backends.limiter.clone(),
        lockouts: backends.lockouts.clone(),
        factors: backends.mfa.clone(),
        clients: backends.clients.clone(),
        tickets: backends.tickets.clone(),
        grants: backends.grants.clone(),
        audit: Audit::new(backends.audit.clone(), metrics.clone())
            .with_head_keys(backends.audit_head_keys.clone()),
        outbox: Outbox::new(
            backends.mail.clone(),
            backends.sealer.clone(),
            clock.clone(),
            metrics.clone(),
        ),
        clock,
    }
}

/// The password hasher, one slot per core.
fn hasher(settings: &Settings, metrics: &Arc<Metrics>) -> Result<PasswordHasher, StartupError> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Ok(PasswordHasher::new(settings.argon2, cores, metrics.clone())?)
}

fn templates(settings: &Settings) -> Templates {
    Templates::new(&settings.tokens.brand_name, &settings.mail)
}

/// What the use cases take of the settings.
fn auth_settings(settings: &Settings) -> AuthSettings {
    AuthSettings {
        refresh_token_ttl: settings.tokens.refresh_ttl,
        refresh_reuse_grace: settings.tokens.refresh_reuse_grace,
        password_policy: settings.accounts.password_policy,
        limits: Limits {
            ip: settings.limits.ip,
            account: settings.limits.account,
            reads: settings.limits.reads,
            mail: settings.limits.mail,
            client: settings.limits.client,
        },
        lockout: lockout_policy(settings),
        session_lifetime: settings.accounts.session_lifetime,
        max_sessions_per_user: settings.accounts.max_sessions_per_user,
        device_token_ttl: settings.accounts.device_token_ttl,
        mail: MailFlows {
            verification: settings.mail.verification,
            email_token_ttl: settings.mail.email_token_ttl,
            password_reset_ttl: settings.mail.password_reset_ttl,
        },
        authorization: AuthorizeSettings {
            issuer: settings.tokens.issuer.clone(),
            code_ttl: settings.tokens.authorization_code_ttl,
            interaction_ttl: settings.tokens.interaction_ttl,
            login_ui_url: settings.tokens.login_ui_url.clone(),
            provider: settings.tokens.provider(),
        },
    }
}

/// The passkey relying party the settings describe (checked when they were read). Subdomains
/// and other ports are not allowed: the origins must be listed as they are.
fn relying_party(settings: &Settings) -> webauthn_rs_core::WebauthnCore {
    let rp = &settings.webauthn;
    webauthn_rs_core::WebauthnCore::new_unsafe_experts_only(
        &rp.rp_name,
        &rp.rp_id,
        rp.origins.clone(),
        crate::auth::CEREMONY_TTL,
        Some(false),
        Some(false),
    )
}

/// The lockout rule the settings describe.
pub(super) fn lockout_policy(settings: &Settings) -> LockoutPolicy {
    LockoutPolicy {
        threshold: settings.lockout.threshold,
        window: settings.lockout.window,
        duration: settings.lockout.duration,
        max_failures: settings.lockout.max_failures,
        memory: FAILURE_MEMORY,
    }
}

/// The metrics registry, or a startup error.
pub fn new_metrics() -> Result<Arc<Metrics>, StartupError> {
    Metrics::new()
        .map(Arc::new)
        .map_err(|e| StartupError::Auth(crate::auth::AuthError::Internal(e.into())))
}
