//! Feature `lock_api`: [`RawRobustMutex`], the robust process-shared lock as a
//! `lock_api::RawMutex`, for people who lay out their own shared structs.

use std::time::{Duration, Instant};

use static_assertions::const_assert_eq;

use crate::error::LockError;
use crate::layout::ShmSafe;
use crate::sync::mutex::{RawLock, Wait};

/// A robust, process-shared raw mutex for `lock_api` (feature `lock_api`).
///
/// All-zero bytes are a free lock (its `INIT`), so it can live in zero-filled shared memory
/// (a [`SharedMemory`](crate::SharedMemory) block you lay out yourself). `lock_api` has no
/// poisoning: when a holder dies the next locker still gets the lock, and
/// [`is_poisoned`](Self::is_poisoned) tells it the data may be half-updated.
///
/// # Panics
/// `lock()` panics where `lock_api` leaves no way to report an error: a relock by the owning
/// thread (it would deadlock).
///
/// # Example
/// ```
/// use lock_api::Mutex;
/// use shmproc::RawRobustMutex;
///
/// let m: Mutex<RawRobustMutex, u32> = Mutex::new(1);
/// *m.lock() += 1;
/// assert_eq!(*m.lock(), 2);
/// ```
#[repr(C, align(64))]
pub struct RawRobustMutex {
    lock: RawLock,
}

const_assert_eq!(std::mem::size_of::<RawRobustMutex>(), 64);

// SAFETY: repr(C) around a RawLock (itself ShmSafe); all-zero is a free lock.
unsafe impl ShmSafe for RawRobustMutex {}

impl RawRobustMutex {
    /// `None` when not acquired; a relock by the owner is `None` too (the `try_` forms must not
    /// panic), and `lock()` turns that into its documented panic.
    fn take(&self, wait: Wait) -> Option<lock_api::GuardNoSend> {
        match self.lock.acquire(wait, false, lock_api::GuardNoSend::new) {
            Ok(g) => Some(g),
            Err(LockError::Poisoned(p)) => Some(p.into_inner()),
            Err(_) => None,
        }
    }

    /// Whether a holder died or panicked while holding it, since the last `clear_poison`.
    pub fn is_poisoned(&self) -> bool {
        self.lock.is_poisoned()
    }

    /// Declares the protected data consistent again.
    pub fn clear_poison(&self) {
        self.lock.clear_poison();
    }
}

// SAFETY: `lock`/`try_lock` return a guard only after acquiring the robust mutex for the calling
// thread, which excludes every other thread and process until `unlock`; `unlock` releases it and
// may only be called by the holder (the trait's contract). The guard is not Send: the lock word
// records the owning thread's id, so it must be released by the thread that took it.
unsafe impl lock_api::RawMutex for RawRobustMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: RawRobustMutex = RawRobustMutex { lock: RawLock::new() };

    type Guard = lock_api::GuardNoSend;

    fn lock(&self) -> Self::Guard {
        match self.take(Wait::Until(None)) {
            Some(g) => g,
            // A blocking lock with no deadline fails only on a relock by the owner.
            None => panic!("RawRobustMutex::lock: this thread already holds the lock (it would deadlock)"),
        }
    }

    fn try_lock(&self) -> Option<Self::Guard> {
        self.take(Wait::No)
    }

    unsafe fn unlock(&self, _guard: Self::Guard) {
        if std::thread::panicking() {
            self.lock.poison();
        }
        // The caller holds the lock (trait contract).
        self.lock.release_held();
    }

    fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }
}

// SAFETY: as for RawMutex; the timed forms give up without acquiring.
unsafe impl lock_api::RawMutexTimed for RawRobustMutex {
    type Duration = Duration;
    type Instant = Instant;

    fn try_lock_for(&self, timeout: Duration) -> Option<Self::Guard> {
        self.take(Wait::Until(crate::sys::clock::deadline_in(timeout)))
    }

    fn try_lock_until(&self, timeout: Instant) -> Option<Self::Guard> {
        self.try_lock_for(timeout.saturating_duration_since(Instant::now()))
    }
}
