//! Argon2id password hashing, off the async threads and bounded.
//!
//! Each hash takes milliseconds of CPU and ~19 MiB of memory (OWASP Password Storage Cheat Sheet
//! parameters), so it runs on threads of its own, one per slot, behind a semaphore: a flood of
//! logins waits for a permit instead of occupying every worker thread, and token refreshes and
//! authenticated requests, which never hash, keep being served. The hashing threads run at a
//! lower CPU priority (nice 10) than the threads that answer requests: when both want the CPU,
//! as in a login flood, a request that needs no hash is answered first, and the hashes take
//! what is left, which on an idle machine is everything. The queue is bounded too: past
//! `MAX_WAITING_PER_SLOT` waiting checks per slot, a check is refused at once (503) rather than
//! left to wait seconds while holding a connection. A check cancelled while it waits (its client
//! gone, its request timed out) gives its queue place back; a hash already running keeps its slot
//! until it ends, even when its caller is gone, so the number in flight never exceeds the slots.
//!
//! The hashing itself is `argon2-rust`: bit-exact with the reference implementation and the
//! RustCrypto crate (hashes are the same PHC strings either way; a test checks both directions),
//! with the fill dispatched at run time to AVX-512, AVX2 or SSE2. Each slot keeps one Argon2
//! workspace, wiped after every hash, so a hash reuses its slot's memory instead of mapping and
//! faulting in 19 MiB afresh: the memory held is exactly the slots times the configured cost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2_rust::params::{Memory, TagLen};
use argon2_rust::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use super::CryptoError;
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
    argon2: Argon2,
    /// The hashing threads' queue of work; never longer than the slots, as work takes a permit.
    jobs: std::sync::mpsc::Sender<Job>,
    /// The workspaces of the slots, taken by a hash for as long as it runs. There are never more
    /// than the slots, since a hash takes one only while it holds a permit.
    workspaces: Arc<Mutex<Vec<argon2_rust::Hasher>>>,
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
    ) -> Result<Self, CryptoError> {
        let params = Params::builder()
            .memory(Memory::kib(u64::from(settings.memory_kib)))
            .passes(settings.iterations)
            .lanes(settings.parallelism)
            .tag_len(TagLen::bytes(32))
            .build()
            .map_err(|e| CryptoError::caused("argon2 parameters", e))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = Password::new(&super::tokens::random_token());
        let dummy_hash = hash_with(&mut argon2.hasher(), &dummy)?;
        let slots = max_in_flight.max(1);
        Ok(Self {
            argon2,
            jobs: start_hashing_threads(slots)?,
            workspaces: Arc::new(Mutex::new(Vec::with_capacity(slots))),
            permits: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
            max_waiting: slots * MAX_WAITING_PER_SLOT,
            metrics,
            dummy_hash,
        })
    }

    /// Whether a check would be taken now (a free slot, or a place in the queue): asked before
    /// any other work of a request that hashes, so that in a flood the excess is refused at
    /// once instead of after its lookups. The check itself may still find the queue full.
    pub fn has_room(&self) -> bool {
        self.permits.available_permits() > 0
            || self.waiting.load(Ordering::SeqCst) < self.max_waiting
    }

    /// The same hasher with another bound on waiting checks.
    pub fn with_max_waiting(mut self, max_waiting: usize) -> Self {
        self.max_waiting = max_waiting;
        self
    }

    /// Hashes a password with a fresh salt.
    pub async fn hash(&self, password: Password) -> Result<String, CryptoError> {
        self.run(move |workspace| hash_with(workspace, &password)).await?
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no account.
    /// A match against outdated parameters also re-hashes, in the same blocking task.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<Verified, CryptoError> {
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let configured = self.argon2;
        self.run(move |workspace| {
            let found = argon2_rust::decode_phc(&stored)
                .map_err(|e| CryptoError::caused("stored hash unreadable", e))?;
            let matches = match workspace.verify_encoded_bounded(
                &stored,
                password.expose().as_bytes(),
                found.algorithm,
                &CEILING,
            ) {
                Ok(()) => true,
                Err(argon2_rust::Error::VerifyMismatch) => false,
                Err(e) => return Err(CryptoError::caused("stored hash unusable", e)),
            };
            let same_cost =
                (found.params.memory_kib(), found.params.passes(), found.params.lanes())
                    == (
                        configured.params().memory_kib(),
                        configured.params().passes(),
                        configured.params().lanes(),
                    );
            let needs_rehash = !same_cost
                || found.algorithm != Algorithm::Argon2id
                || found.version != Version::V0x13;
            let matches = matches && exists;
            let upgraded_hash =
                if matches && needs_rehash { Some(hash_with(workspace, &password)?) } else { None };
            Ok(Verified { matches, upgraded_hash })
        })
        .await?
    }

    /// Runs `work` on the blocking pool once a hashing slot is free. The slot's permit moves into
    /// the blocking task, so a hash whose caller has gone away (client disconnected, request timed
    /// out) keeps its slot until it really ends and the bound on hashes in flight holds.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut argon2_rust::Hasher) -> T + Send + 'static,
    ) -> Result<T, CryptoError> {
        let closed = |e| CryptoError::caused("hasher closed", e);
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let Some(place) = self.queue_place() else {
                    self.metrics.refusal("hashing_queue_full");
                    return Err(CryptoError::Busy);
                };
                let permit = self.permits.clone().acquire_owned().await.map_err(closed)?;
                drop(place);
                permit
            }
        };
        self.metrics.hash_started();
        let (workspaces, argon2) = (self.workspaces.clone(), self.argon2);
        let (done, outcome) = tokio::sync::oneshot::channel();
        let job = Box::new(move || {
            let taken = workspaces.lock().ok().and_then(|mut free| free.pop());
            let mut workspace = taken.unwrap_or_else(|| argon2.hasher());
            workspace.set_argon2(argon2);
            let result = work(&mut workspace);
            if let Ok(mut free) = workspaces.lock() {
                free.push(workspace);
            }
            // The slot is free before the caller hears of it. The caller may have gone away;
            // the slot was held until here all the same.
            drop(permit);
            let _ = done.send(result);
        });
        self.jobs.send(job).map_err(|_| CryptoError::failed("hashing threads gone"))?;
        outcome.await.map_err(|e| CryptoError::caused("a hash failed", e))
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

/// Work for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// The nice value of the hashing threads: below the request threads' 0, so that requests which
/// need no hash are scheduled first when the CPU is short.
const HASHING_NICE: i32 = 10;

/// Starts one hashing thread per slot, fed by one queue. The threads end when the hasher (the
/// queue's sender) is dropped. A job that panics ends only itself: its caller gets an error.
fn start_hashing_threads(count: usize) -> Result<std::sync::mpsc::Sender<Job>, CryptoError> {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for index in 0..count {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("portcullis-hash-{index}"))
            .spawn(move || {
                lower_priority();
                loop {
                    let next = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = next else { return };
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| CryptoError::caused("could not start a hashing thread", e))?;
    }
    Ok(jobs)
}

/// Lowers this thread's CPU priority to `HASHING_NICE` (on Linux, `setpriority` on a thread id
/// applies to that thread alone). Where it is refused, hashing just runs at the usual priority.
fn lower_priority() {
    let thread = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(thread), HASHING_NICE) {
        tracing::debug!(%error, "hashing threads keep the default CPU priority");
    }
}

/// The largest stored hash a verification runs: 256 MiB, 16 passes, 8 lanes on one thread. A
/// hash is a string from the database (or an import), and its parameters decide the memory and
/// threads a verification takes; past these it is refused rather than run.
const CEILING: Params = Params::builder()
    .memory(Memory::mib(256))
    .passes(16)
    .lanes(8)
    .threads(1)
    .tag_len(TagLen::bytes(64))
    .build_or_panic();

fn hash_with(
    workspace: &mut argon2_rust::Hasher,
    password: &Password,
) -> Result<String, CryptoError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| CryptoError::caused("no randomness", e))?;
    workspace
        .hash_password(password.expose().as_bytes(), &salt)
        .map_err(|e| CryptoError::caused("hashing failed", e))
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
    async fn a_hash_verifies_its_password_only() -> Result<(), CryptoError> {
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
    async fn past_the_queue_bound_a_check_is_refused_at_once() -> Result<(), CryptoError> {
        use futures::FutureExt as _;
        let hasher = PasswordHasher::new(small(), 1, metrics())?.with_max_waiting(1);
        // The one slot is busy, so the first check takes the one queue place and waits...
        let busy = hasher.permits.clone().try_acquire_owned().unwrap();
        let mut waiting = Box::pin(hasher.hash(Password::new("Correct#Horse1")));
        assert!((&mut waiting).now_or_never().is_none());
        // ...and the next finds the queue full, at once.
        let refused = hasher.hash(Password::new("Correct#Horse1")).await;
        assert!(matches!(refused, Err(CryptoError::Busy)), "{refused:?}");
        drop(busy);
        assert!(waiting.await.is_ok(), "the waiting check gets the slot");
        Ok(())
    }

    #[tokio::test]
    async fn cancelled_waits_give_their_queue_place_back() -> Result<(), CryptoError> {
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
    async fn a_cancelled_check_keeps_its_slot_until_its_hash_ends() -> Result<(), CryptoError> {
        let hasher = PasswordHasher::new(small(), 1, metrics())?;
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (started, has_started) = tokio::sync::oneshot::channel();
        let (open_gate, gate) = std::sync::mpsc::channel::<()>();
        let work = |started: Option<tokio::sync::oneshot::Sender<()>>,
                    gate: Option<std::sync::mpsc::Receiver<()>>| {
            let (running, most) = (running.clone(), most.clone());
            move |_: &mut argon2_rust::Hasher| {
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

    /// The PHC strings of this crate and of the RustCrypto `argon2` crate are the same format and
    /// the same hashes: each verifies what the other wrote, so hashes stored before the change of
    /// implementation keep working, and a move back would too.
    #[tokio::test]
    async fn hashes_verify_across_implementations() -> Result<(), CryptoError> {
        use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(small(), 1, metrics())?;
        let ours = hasher.hash(Password::new("Correct#Horse1")).await?;
        let parsed =
            PasswordHash::new(&ours).map_err(|e| CryptoError::caused("test", e.to_string()))?;
        let theirs = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(1024, 1, 1, None)
                .map_err(|e| CryptoError::caused("test", e.to_string()))?,
        );
        assert!(theirs.verify_password(b"Correct#Horse1", &parsed).is_ok());
        assert!(theirs.verify_password(b"Correct#Horse2", &parsed).is_err());

        let salt = argon2::password_hash::SaltString::encode_b64(b"sixteen byte salt")
            .map_err(|e| CryptoError::caused("test", e.to_string()))?;
        let stored = theirs
            .hash_password(b"Correct#Horse1", &salt)
            .map_err(|e| CryptoError::caused("test", e.to_string()))?
            .to_string();
        let right = hasher.verify(Password::new("Correct#Horse1"), Some(stored.clone())).await?;
        assert_eq!(right, Verified { matches: true, upgraded_hash: None });
        assert!(
            !hasher.verify(Password::new("Correct#Horse2"), Some(stored.clone())).await?.matches
        );
        // Bit for bit: the same password and salt give the same string in both.
        let mut workspace = hasher.argon2.hasher();
        let same = workspace
            .hash_password(b"Correct#Horse1", b"sixteen byte salt")
            .map_err(|e| CryptoError::caused("test", e.to_string()))?;
        assert_eq!(same, stored);
        Ok(())
    }

    /// A stored hash whose cost is past the ceiling is refused, not run: its parameters are data.
    #[tokio::test]
    async fn a_hash_past_the_ceiling_is_not_run() -> Result<(), CryptoError> {
        let hasher = PasswordHasher::new(small(), 1, metrics())?;
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c2l4dGVlbiBieXRlIHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let refused = hasher.verify(Password::new("Correct#Horse1"), Some(huge.into())).await;
        assert!(matches!(refused, Err(CryptoError::Failed { .. })), "{refused:?}");
        Ok(())
    }

    /// The workspaces are the slots' and no more, however many hashes ran.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workspaces_are_kept_per_slot() -> Result<(), CryptoError> {
        let hasher = Arc::new(PasswordHasher::new(small(), 2, metrics())?);
        let hashes: Vec<_> = (0..8)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(Password::new("Correct#Horse1")).await })
            })
            .collect();
        for hash in hashes {
            hash.await.map_err(|e| CryptoError::caused("test", e.to_string()))??;
        }
        let kept = hasher.workspaces.lock().map(|w| w.len()).unwrap_or_default();
        assert!((1..=2).contains(&kept), "{kept} workspaces for 2 slots");
        Ok(())
    }

    /// Hashes run on threads of their own at a lower priority than the request threads.
    #[tokio::test]
    async fn hashes_run_at_a_lower_priority() -> Result<(), CryptoError> {
        let hasher = PasswordHasher::new(small(), 1, metrics())?;
        let (nice, name) = hasher
            .run(|_| {
                let me = rustix::thread::gettid();
                let nice = rustix::process::getpriority_process(Some(me)).unwrap_or(0);
                (nice, std::thread::current().name().map(str::to_owned))
            })
            .await?;
        assert_eq!(nice, HASHING_NICE);
        assert_eq!(name.as_deref(), Some("portcullis-hash-0"));
        Ok(())
    }

    #[tokio::test]
    async fn no_account_never_matches() -> Result<(), CryptoError> {
        let hasher = PasswordHasher::new(small(), 1, metrics())?;
        assert!(!hasher.verify(Password::new("anything"), None).await?.matches);
        Ok(())
    }

    #[tokio::test]
    async fn changed_parameters_ask_for_a_rehash() -> Result<(), CryptoError> {
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
