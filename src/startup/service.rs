//! The use cases built on the backends: the one place that maps `Settings` onto what `auth`
//! takes (`AuthSettings`, `AccessTokenSettings`, the lockout rule, the relying party).

use std::sync::Arc;

use crate::audit::Audit;
use crate::auth::{AuthService, AuthSettings, AuthStores, Limits, MailFlows, SecondFactors};
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
) -> Result<AuthService, StartupError> {
    let access = AccessTokens::load_with_clock(
        access_settings(settings),
        backends.keys.as_ref(),
        clock.clone(),
    )
    .await?;
    let keys = ServiceKeys {
        successor: backends
            .keys
            .secret("refresh_successor_key", &tokens::random_bytes::<32>())
            .await?,
        factors: backends.keys.secret("second_factor_key", &tokens::random_bytes::<32>()).await?,
    };
    assemble(settings, backends, metrics, clock, access, keys)
}

/// The use cases as the account commands of the command line use them (create, unlock,
/// disable, enable, delete, list, reset second factors): none of them issues a token or opens a
/// second factor, so no signing key, refresh-successor key or second-factor key is read from the
/// database or created in it. The keys this service holds are random, of this process only, and
/// never stored: it must not be used to sign tokens or seal second factors.
pub async fn build_for_commands(
    settings: &Settings,
    backends: &Backends,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> Result<AuthService, StartupError> {
    let random = || tokens::random_bytes::<32>().to_vec();
    let settings_of_this_process = AccessTokenSettings {
        secret: Some(secrecy::SecretSlice::from(random())),
        ..access_settings(settings)
    };
    // With a secret of its own the token issuer reads and writes no key (HS256 mode).
    let access = AccessTokens::load_with_clock(
        settings_of_this_process,
        backends.keys.as_ref(),
        clock.clone(),
    )
    .await?;
    let keys = ServiceKeys { successor: random(), factors: random() };
    assemble(settings, backends, metrics, clock, access, keys)
}

/// The keys under the use cases: the refresh-successor key and the second-factor key.
struct ServiceKeys {
    successor: Vec<u8>,
    factors: Vec<u8>,
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

/// The service on `backends`, with its token issuer and keys.
fn assemble(
    settings: &Settings,
    backends: &Backends,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    access: AccessTokens,
    keys: ServiceKeys,
) -> Result<AuthService, StartupError> {
    let factors = SecondFactors {
        store: backends.mfa.clone(),
        sealer: backends.sealer.clone(),
        key: KeyedHasher::new(&keys.factors)?,
        webauthn: relying_party(settings),
        issuer: settings.tokens.issuer.clone(),
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stores = AuthStores {
        users: backends.users.clone(),
        sessions: backends.sessions.clone(),
        limiter: backends.limiter.clone(),
        lockouts: backends.lockouts.clone(),
        audit: Audit::new(backends.audit.clone(), metrics.clone())
            .with_head_keys(backends.audit_head_keys.clone()),
        outbox: Outbox::new(
            backends.mail.clone(),
            backends.sealer.clone(),
            clock.clone(),
            metrics.clone(),
        ),
        clock,
        factors,
    };
    Ok(AuthService::new(
        stores,
        PasswordHasher::new(settings.argon2, cores, metrics.clone())?,
        Arc::new(access),
        SuccessorKey::new(keys.successor),
        AuthSettings {
            refresh_token_ttl: settings.tokens.refresh_ttl,
            refresh_reuse_grace: settings.tokens.refresh_reuse_grace,
            password_policy: settings.accounts.password_policy,
            limits: Limits {
                ip: settings.limits.ip,
                account: settings.limits.account,
                reads: settings.limits.reads,
                mail: settings.limits.mail,
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
        },
        Templates::new(&settings.tokens.issuer, &settings.mail),
        metrics,
    ))
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
