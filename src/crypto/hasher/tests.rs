//! The hashing pool's bounds, priorities and compatibility.

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
    assert!(!hasher.verify(Password::new("Correct#Horse2"), Some(stored.clone())).await?.matches);
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
