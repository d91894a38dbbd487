//! Argon2id password hashing, off the async threads and bounded.
//!
//! Each hash takes tens of milliseconds of CPU and ~19 MiB of memory (OWASP Password Storage Cheat
//! Sheet parameters), so it runs on the blocking pool behind a semaphore: a flood of logins waits
//! for a permit instead of occupying every worker thread, and token refreshes and authenticated
//! requests, which never hash, keep being served. The queue is bounded too: past
//! `MAX_WAITING_PER_SLOT` waiting checks per slot, a check is refused at once (503) rather than
//! left to wait seconds while holding a connection.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use super::AuthError;
use crate::config::Argon2Settings;
use crate::domain::Password;
use crate::metrics::Metrics;

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// When the password matched a hash made with other parameters than the configured ones: a
    /// hash with the current parameters, to store in its place.
    pub upgraded_hash: Option<String>,
}

/// Checks that may wait for each hashing slot; at ~25 ms a hash, about 1.5 s of queue.
const MAX_WAITING_PER_SLOT: usize = 64;

pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
    metrics: Arc<Metrics>,
    /// A hash of a random password, verified against when the account does not exist, so that an
    /// unknown email costs the same time as a wrong password (no user enumeration by timing).
    dummy_hash: String,
}

impl PasswordHasher {
    pub fn new(
        settings: Argon2Settings,
        max_in_flight: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuthError> {
        let params =
            Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
                .map_err(|e| AuthError::Internal(format!("argon2 parameters: {e}")))?;
        let dummy = Password::new(&crate::auth::tokens::random_token());
        let dummy_hash = hash_blocking(&params, &dummy)?;
        let slots = max_in_flight.max(1);
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(slots)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting: slots * MAX_WAITING_PER_SLOT,
            metrics,
            dummy_hash,
        })
    }

    /// The same hasher with another bound on waiting checks.
    pub fn with_max_waiting(mut self, max_waiting: usize) -> Self {
        self.max_waiting = max_waiting;
        self
    }

    /// Hashes a password with a fresh salt.
    pub async fn hash(&self, password: Password) -> Result<String, AuthError> {
        let params = self.params.clone();
        self.run(move || hash_blocking(&params, &password)).await?
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no account.
    /// A match against outdated parameters also re-hashes, in the same blocking task.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<Verified, AuthError> {
        let params = self.params.clone();
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        self.run(move || {
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| AuthError::Internal(format!("stored hash unreadable: {e}")))?;
            let matches =
                argon2(&params).verify_password(password.expose().as_bytes(), &parsed).is_ok();
            let same_cost = |p: Params| {
                (p.m_cost(), p.t_cost(), p.p_cost())
                    == (params.m_cost(), params.t_cost(), params.p_cost())
            };
            let needs_rehash = !Params::try_from(&parsed).is_ok_and(same_cost)
                || parsed.algorithm.as_str() != "argon2id";
            let matches = matches && exists;
            let upgraded_hash = if matches && needs_rehash {
                Some(hash_blocking(&params, &password)?)
            } else {
                None
            };
            Ok(Verified { matches, upgraded_hash })
        })
        .await?
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        use std::sync::atomic::Ordering;
        let permit = match self.permits.try_acquire() {
            Ok(permit) => Ok(permit),
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    self.metrics.refusal("hashing_queue_full");
                    return Err(AuthError::Unavailable("too many password checks waiting".into()));
                }
                self.metrics.hashes_waiting().inc();
                let permit = self.permits.acquire().await;
                self.metrics.hashes_waiting().dec();
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                permit
            }
        };
        let _permit = permit.map_err(|_| AuthError::Internal("hasher closed".to_owned()))?;
        self.metrics.hash_started();
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &Password) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Internal(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Internal(e.to_string()))?;
    argon2(params)
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Internal(format!("hashing failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new().unwrap_or_else(|e| panic!("{e}")))
    }

    fn small() -> Argon2Settings {
        Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 }
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() -> Result<(), AuthError> {
        let hasher = PasswordHasher::new(small(), 2, metrics())?;
        let hash = hasher.hash(Password::new("Correct#Horse1")).await?;
        assert!(hash.starts_with("$argon2id$"));
        let right = hasher.verify(Password::new("Correct#Horse1"), Some(hash.clone())).await?;
        let wrong = hasher.verify(Password::new("Correct#Horse2"), Some(hash)).await?;
        assert_eq!(right, Verified { matches: true, upgraded_hash: None });
        assert!(!wrong.matches);
        Ok(())
    }

    #[tokio::test]
    async fn past_the_queue_bound_a_check_is_refused_at_once() -> Result<(), AuthError> {
        let hasher = PasswordHasher::new(small(), 1, metrics())?.with_max_waiting(1);
        let checks = (0..3).map(|_| hasher.hash(Password::new("Correct#Horse1")));
        let results = futures::future::join_all(checks).await;
        let refused =
            results.iter().filter(|r| matches!(r, Err(AuthError::Unavailable(_)))).count();
        // One hashes, one waits for it, the third finds the queue full.
        assert_eq!(refused, 1);
        assert!(results[0].is_ok() && results[1].is_ok());
        Ok(())
    }

    #[tokio::test]
    async fn no_account_never_matches() -> Result<(), AuthError> {
        let hasher = PasswordHasher::new(small(), 1, metrics())?;
        assert!(!hasher.verify(Password::new("anything"), None).await?.matches);
        Ok(())
    }

    #[tokio::test]
    async fn changed_parameters_ask_for_a_rehash() -> Result<(), AuthError> {
        let old = PasswordHasher::new(small(), 1, metrics())?;
        let hash = old.hash(Password::new("Correct#Horse1")).await?;
        let new = PasswordHasher::new(Argon2Settings { iterations: 2, ..small() }, 1, metrics())?;
        let verified = new.verify(Password::new("Correct#Horse1"), Some(hash)).await?;
        assert!(verified.matches);
        let upgraded = verified.upgraded_hash.unwrap_or_default();
        assert!(upgraded.contains("m=1024,t=2,p=1"), "{upgraded}");
        let again = new.verify(Password::new("Correct#Horse1"), Some(upgraded)).await?;
        assert_eq!(again, Verified { matches: true, upgraded_hash: None });
        Ok(())
    }
}
