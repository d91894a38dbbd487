//! Builds the services once, each on the stores and services it uses, sharing the steps beneath
//! them; and, for the operator's command line, administration alone, without any key that signs
//! a token or opens a second factor.

use std::sync::Arc;

use super::{
    Accounts, Administration, AuthSettings, AuthStores, Authorization, BrowserSessions, Budgets,
    ClientEndpoints, Clients, Events, Factors, GrantSettings, Grants, Lockouts, Notifier,
    Passwords, Proofs, Recovery, Registration, SecondFactors, SessionSettings, Sessions, SignIn,
    SignInSettings,
};
use crate::crypto::{AccessTokens, PasswordHasher, SuccessorKey};
use crate::mail::Templates;
use crate::metrics::Metrics;

/// Every capability, each behind its own `Arc`: the HTTP state hands each handler the one it
/// uses.
pub struct UseCases {
    pub sign_in: Arc<SignIn>,
    pub sessions: Arc<Sessions>,
    pub registration: Arc<Registration>,
    pub accounts: Arc<Accounts>,
    pub factors: Arc<Factors>,
    pub recovery: Arc<Recovery>,
    pub admin: Arc<Administration>,
    pub events: Arc<Events>,
    pub clients: Arc<Clients>,
    /// The endpoints where a client authenticates: token and introspection.
    pub client_endpoints: Arc<ClientEndpoints>,
    /// The authorization endpoint and the pages that finish it.
    pub authorization: Arc<Authorization>,
    /// The browsers' sign-in sessions.
    pub browsers: Arc<BrowserSessions>,
    /// The apps each user has authorised.
    pub grants: Arc<Grants>,
    /// The outbox the use cases queue mail in, for this instance's sender.
    pub mail: Arc<Notifier>,
}

/// The steps every capability shares, built once.
struct Shared {
    stores: AuthStores,
    budgets: Arc<Budgets>,
    lockout: Arc<Lockouts>,
    passwords: Arc<Passwords>,
    mail: Arc<Notifier>,
    registration: Arc<Registration>,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn new(
        stores: AuthStores,
        hasher: PasswordHasher,
        settings: &AuthSettings,
        templates: Templates,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (audit, clock) = (stores.audit.clone(), stores.clock.clone());
        let budgets = Arc::new(Budgets::new(
            stores.limiter.clone(),
            audit.clone(),
            metrics.clone(),
            clock.clone(),
            settings.limits,
        ));
        let lockout = Arc::new(Lockouts::new(
            stores.lockouts.clone(),
            audit.clone(),
            metrics.clone(),
            clock.clone(),
            settings.lockout,
        ));
        let passwords = Arc::new(Passwords {
            users: stores.users.clone(),
            hasher,
            budgets: budgets.clone(),
            lockout: lockout.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            policy: settings.password_policy,
            device_token_ttl: settings.device_token_ttl,
        });
        let mail = Arc::new(Notifier {
            outbox: stores.outbox.clone(),
            templates,
            clock: clock.clone(),
            flows: settings.mail,
        });
        let registration = Arc::new(Registration {
            users: stores.users.clone(),
            passwords: passwords.clone(),
            budgets: budgets.clone(),
            mail: mail.clone(),
            audit,
            clock,
        });
        Self { stores, budgets, lockout, passwords, mail, registration, metrics }
    }

    fn administration(&self) -> Administration {
        let stores = &self.stores;
        Administration {
            users: stores.users.clone(),
            sessions: stores.sessions.clone(),
            grants: stores.grants.clone(),
            factors: stores.factors.clone(),
            passwords: self.passwords.clone(),
            registration: self.registration.clone(),
            lockout: self.lockout.clone(),
            mail: self.mail.clone(),
            audit: stores.audit.clone(),
            clock: stores.clock.clone(),
        }
    }
}

/// Administration alone, as the operator's command line uses it: no signing key, refresh
/// successor key or second-factor key is read from the database or created in it.
pub fn administration(
    stores: AuthStores,
    hasher: PasswordHasher,
    settings: &AuthSettings,
    templates: Templates,
    metrics: Arc<Metrics>,
) -> Administration {
    Shared::new(stores, hasher, settings, templates, metrics).administration()
}

impl UseCases {
    #[allow(clippy::too_many_arguments)] // each is a distinct piece `startup` builds
    pub fn new(
        stores: AuthStores,
        factors: SecondFactors,
        hasher: PasswordHasher,
        access: Arc<AccessTokens>,
        successors: SuccessorKey,
        settings: AuthSettings,
        templates: Templates,
        metrics: Arc<Metrics>,
    ) -> Self {
        let shared = Shared::new(stores, hasher, &settings, templates, metrics);
        let admin = Arc::new(shared.administration());
        let Shared { stores, budgets, lockout, passwords, mail, registration, metrics } = shared;
        let factors = Arc::new(factors);
        let (audit, clock) = (stores.audit.clone(), stores.clock.clone());
        let sessions = Arc::new(Sessions {
            users: stores.users.clone(),
            sessions: stores.sessions.clone(),
            clients: stores.clients.clone(),
            access: access.clone(),
            successors,
            budgets: budgets.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            settings: SessionSettings {
                refresh_token_ttl: settings.refresh_token_ttl,
                refresh_reuse_grace: settings.refresh_reuse_grace,
                session_lifetime: settings.session_lifetime,
                max_sessions_per_user: settings.max_sessions_per_user,
            },
        });
        let proofs = Arc::new(Proofs {
            passwords: passwords.clone(),
            factors: factors.clone(),
            lockout: lockout.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
        });
        let sign_in = Arc::new(SignIn {
            users: stores.users.clone(),
            sessions: stores.sessions.clone(),
            passwords: passwords.clone(),
            proofs: proofs.clone(),
            budgets: budgets.clone(),
            lockout: lockout.clone(),
            session: sessions.clone(),
            factors: factors.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            metrics,
            settings: SignInSettings {
                verification: settings.mail.verification,
                max_sessions_per_user: settings.max_sessions_per_user,
            },
        });
        let accounts = Arc::new(Accounts {
            users: stores.users.clone(),
            sessions: stores.sessions.clone(),
            grants: stores.grants.clone(),
            factors: stores.factors.clone(),
            passwords: passwords.clone(),
            proofs: proofs.clone(),
            lockout: lockout.clone(),
            mail: mail.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
        });
        let recovery = Arc::new(Recovery {
            users: stores.users.clone(),
            sessions: stores.sessions.clone(),
            factors: stores.factors.clone(),
            passwords: passwords.clone(),
            budgets: budgets.clone(),
            lockout,
            mail: mail.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
        });
        let events = Arc::new(Events::new(audit.clone(), budgets.clone()));
        let clients = Arc::new(Clients::new(stores.clients.clone(), audit.clone(), clock.clone()));
        let client_endpoints = Arc::new(ClientEndpoints {
            clients: stores.clients.clone(),
            tickets: stores.tickets.clone(),
            passwords: passwords.clone(),
            access: access.clone(),
            sessions: stores.sessions.clone(),
            users: stores.users.clone(),
            budgets: budgets.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            session_tokens: sessions.clone(),
            grants: GrantSettings {
                lifetime: settings.session_lifetime,
                refresh_token_ttl: settings.refresh_token_ttl,
                max_sessions_per_user: settings.max_sessions_per_user,
            },
        });
        let authorization = Arc::new(Authorization {
            clients: stores.clients.clone(),
            tickets: stores.tickets.clone(),
            grants: stores.grants.clone(),
            budgets: budgets.clone(),
            audit: audit.clone(),
            access: access.clone(),
            clock: clock.clone(),
            settings: settings.authorization.clone(),
        });
        let grants = Arc::new(Grants {
            grants: stores.grants.clone(),
            clients: stores.clients.clone(),
            sessions: stores.sessions.clone(),
            budgets: budgets.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
        });
        let browsers = Arc::new(BrowserSessions {
            tickets: stores.tickets.clone(),
            sessions: stores.sessions.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
            lifetime: settings.session_lifetime,
        });
        let factors = Arc::new(Factors {
            users: stores.users.clone(),
            passwords,
            proofs,
            budgets,
            factors,
            mail: mail.clone(),
            audit,
            clock,
        });
        Self {
            sign_in,
            sessions,
            registration,
            accounts,
            factors,
            recovery,
            admin,
            events,
            clients,
            client_endpoints,
            authorization,
            browsers,
            grants,
            mail,
        }
    }
}
