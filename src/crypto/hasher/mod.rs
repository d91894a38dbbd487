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
mod tests;
