//! Argon2id password hashing, off the async threads and bounded.
//!
//! Each hash takes tens of milliseconds of CPU and ~19 MiB of memory (OWASP Password Storage Cheat
//! Sheet parameters), so it runs on the blocking pool behind a semaphore: a flood of logins waits
//! for a permit instead of occupying every worker thread, and token refreshes and authenticated
//! requests, which never hash, keep being served. The queue is bounded too: past
//! `MAX_WAITING_PER_SLOT` waiting checks per slot, a check is refused at once (503) rather than
//! left to wait seconds while holding a connection. A check cancelled while it waits (its client
//! gone, its request timed out) gives its queue place back; a hash already running keeps its slot
//! until it ends, even when its caller is gone, so the number in flight never exceeds the slots.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    waiting: AtomicUsize,
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
            waiting: AtomicUsize::new(0),
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

    /// Runs `work` on the blocking pool once a hashing slot is free. The slot's permit moves into
    /// the blocking task, so a hash whose caller has gone away (client disconnected, request timed
    /// out) keeps its slot until it really ends and the bound on hashes in flight holds.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let closed = |_| AuthError::Internal("hasher closed".to_owned());
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let Some(place) = self.queue_place() else {
                    self.metrics.refusal("hashing_queue_full");
                    return Err(AuthError::Unavailable("too many password checks waiting".into()));
                };
                let permit = self.permits.clone().acquire_owned().await.map_err(closed)?;
                drop(place);
                permit
            }
        };
        self.metrics.hash_started();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))
    }

    /// A place in the queue of checks waiting for a slot, or `None` when the queue is full.
    fn queue_place(&self) -> Option<QueuePlace<'_>> {
        let taken = self.waiting.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |waiting| {
            (waiting < self.max_waiting).then_some(waiting + 1)
        });
        taken.ok()?;
        self.metrics.hashes_waiting().inc();
        Some(QueuePlace { hasher: self })
    }
}

/// A waiting check's place in the queue. It is given back when dropped, whether the check got its
/// slot or was cancelled while waiting, so abandoned waits cannot fill the queue for good.
struct QueuePlace<'a> {
    hasher: &'a PasswordHasher,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.hasher.waiting.fetch_sub(1, Ordering::SeqCst);
        self.hasher.metrics.hashes_waiting().dec();
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
        use futures::FutureExt as _;
        let hasher = PasswordHasher::new(small(), 1, metrics())?.with_max_waiting(1);
        // The one slot is busy, so the first check takes the one queue place and waits...
        let busy = hasher.permits.clone().try_acquire_owned().unwrap();
        let mut waiting = Box::pin(hasher.hash(Password::new("Correct#Horse1")));
        assert!((&mut waiting).now_or_never().is_none());
        // ...and the next finds the queue full, at once.
        let refused = hasher.hash(Password::new("Correct#Horse1")).await;
        assert!(matches!(refused, Err(AuthError::Unavailable(_))), "{refused:?}");
        drop(busy);
        assert!(waiting.await.is_ok(), "the waiting check gets the slot");
        Ok(())
    }

    #[tokio::test]
    async fn cancelled_waits_give_their_queue_place_back() -> Result<(), AuthError> {
        use futures::FutureExt as _;
        let metrics = metrics();
        let hasher = PasswordHasher::new(small(), 1, metrics.clone())?.with_max_waiting(4);
        let busy = hasher.permits.clone().try_acquire_owned().unwrap();
        // Each check is polled once, so it takes a queue place and waits for the busy slot, and is
        // then dropped, as when its client disconnects or its request times out.
        for _ in 0..20 {
            assert!(hasher.hash(Password::new("Correct#Horse1")).now_or_never().is_none());
        }
        assert_eq!(metrics.hashes_waiting().get(), 0);
        drop(busy);
        assert!(hasher.hash(Password::new("Correct#Horse1")).await.is_ok());
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_check_keeps_its_slot_until_its_hash_ends() -> Result<(), AuthError> {
        let hasher = PasswordHasher::new(small(), 1, metrics())?;
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (started, has_started) = tokio::sync::oneshot::channel();
        let (open_gate, gate) = std::sync::mpsc::channel::<()>();
        let work = |started: Option<tokio::sync::oneshot::Sender<()>>,
                    gate: Option<std::sync::mpsc::Receiver<()>>| {
            let (running, most) = (running.clone(), most.clone());
            move || {
                most.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                if let Some(started) = started {
                    let _ = started.send(());
                }
                if let Some(gate) = gate {
                    let _ = gate.recv();
                }
                running.fetch_sub(1, Ordering::SeqCst);
            }
        };
        let mut first = Box::pin(hasher.run(work(Some(started), Some(gate))));
        assert!(futures::poll!(&mut first).is_pending());
        has_started.await.unwrap();
        // The caller goes away while its hash runs: the hash still holds the only slot.
        drop(first);
        assert_eq!(hasher.permits.available_permits(), 0);
        let mut second = Box::pin(hasher.run(work(None, None)));
        assert!(futures::poll!(&mut second).is_pending());
        open_gate.send(()).unwrap();
        second.await?;
        assert_eq!(most.load(Ordering::SeqCst), 1, "more hashes in flight than slots");
        assert_eq!(hasher.permits.available_permits(), 1);
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
