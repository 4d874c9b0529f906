//! `ReentrantMutex<T>` and `RLock`: a lock its owner may take again, that survives the death of
//! its holder.
//!
//! The lock word is the same futex word holding the owner's thread id as
//! [`Mutex`](crate::Mutex)'s, marked reentrant: the owning thread's re-entries are counted
//! beside it, a release by any other thread is [`Error::NotOwner`](crate::Error::NotOwner)
//! (Python raises), and owner death is detected and reported exactly as for
//! [`Mutex`](crate::Mutex) (a waiter notices within 10–200 ms and gets
//! [`LockError::Poisoned`](crate::LockError::Poisoned)).

use std::ops::Deref;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{LockResult, Result};
use crate::layout::Kind;
use crate::segment;
use crate::sync::mutex::{Mutex, MutexGuard};

/// A reentrant lock around a `T` in shared memory: the owning thread may lock it again; it is
/// free once every guard is dropped. The guard gives `&T` only (use atomics or `Cell`-free Pod
/// data written through a `Mutex` for mutation).
///
/// # Example
/// ```
/// let lock = shmproc::RLock::new()?;
/// let outer = lock.lock()?;
/// let inner = lock.lock()?; // the owner re-enters
/// drop(inner);
/// drop(outer);
/// assert!(!lock.is_locked());
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct ReentrantMutex<T> {
    inner: Mutex<T>,
}

/// A reentrant lock with no data: Python's `multiprocessing.RLock`.
pub type RLock = ReentrantMutex<()>;

impl<T> Clone for ReentrantMutex<T> {
    /// Another handle to the same lock.
    fn clone(&self) -> Self {
        ReentrantMutex { inner: self.inner.clone() }
    }
}

impl<T> std::fmt::Debug for ReentrantMutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReentrantMutex")
            .field("name", &self.inner.name())
            .field("locked", &self.inner.is_locked())
            .field("poisoned", &self.inner.is_poisoned())
            .finish()
    }
}

/// Grants shared access to the data of a [`ReentrantMutex`]; releases one level when dropped.
#[must_use = "if unused the lock is released at once"]
pub struct ReentrantMutexGuard<'a, T> {
    inner: MutexGuard<'a, T>,
}

impl<T> Deref for ReentrantMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<'a, T> ReentrantMutexGuard<'a, T> {
    /// The lock this guard holds (for `Condition`, which releases and re-takes every level).
    pub(crate) fn raw_lock(&self) -> &'a crate::sync::mutex::RawLock {
        self.inner.raw_lock()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ReentrantMutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

fn wrap<'a, T>(r: LockResult<MutexGuard<'a, T>>) -> LockResult<ReentrantMutexGuard<'a, T>> {
    r.map(|inner| ReentrantMutexGuard { inner }).map_err(|e| e.map(|inner| ReentrantMutexGuard { inner }))
}

impl ReentrantMutex<()> {
    /// An anonymous RLock, shared with every child forked after this call.
    ///
    /// # Errors
    /// As [`Mutex::new`].
    pub fn new() -> Result<Self> {
        Self::with_value(())
    }
}

impl<T: Pod> ReentrantMutex<T> {
    /// An anonymous reentrant mutex holding `value`.
    ///
    /// # Errors
    /// As [`Mutex::new`].
    pub fn with_value(value: T) -> Result<Self> {
        Ok(ReentrantMutex { inner: Mutex::create_raw(None, Kind::RLock, value, true)? })
    }

    /// A named reentrant mutex holding `value`.
    ///
    /// # Errors
    /// As [`Mutex::create`].
    pub fn create(name: &str, value: T) -> Result<Self> {
        Ok(ReentrantMutex { inner: Mutex::create_raw(Some(name), Kind::RLock, value, true)? })
    }

    /// Attaches to a named reentrant mutex.
    ///
    /// # Errors
    /// As [`Mutex::open`]; a plain `Mutex` of that name is [`Error::WrongKind`](crate::Error::WrongKind).
    pub fn open(name: &str) -> Result<Self> {
        Ok(ReentrantMutex { inner: Mutex::open_kind(name, Kind::RLock, segment::DEFAULT_OPEN_TIMEOUT)? })
    }
}

impl<T> ReentrantMutex<T> {
    /// Blocks until the lock is acquired (at once if this thread owns it).
    ///
    /// # Errors
    /// [`LockError::Poisoned`](crate::LockError::Poisoned) (with the guard) after a holder died or panicked;
    /// [`LockError::TooManyRecursions`](crate::LockError::TooManyRecursions) when the recursion counter is full.
    pub fn lock(&self) -> LockResult<ReentrantMutexGuard<'_, T>> {
        wrap(self.inner.lock())
    }

    /// Acquires the lock if it is free or owned by this thread.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`](crate::LockError::WouldBlock) when another thread holds it, plus those of [`lock`](Self::lock).
    pub fn try_lock(&self) -> LockResult<ReentrantMutexGuard<'_, T>> {
        wrap(self.inner.try_lock())
    }

    /// Blocks until the lock is acquired or `timeout` passes.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`](crate::LockError::WouldBlock) on timeout, plus those of [`lock`](Self::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<ReentrantMutexGuard<'_, T>> {
        wrap(self.inner.lock_timeout(timeout))
    }

    /// Python's `acquire(block=True, timeout=None)`: counts one level, returns whether acquired.
    ///
    /// # Errors
    /// As [`Mutex::acquire`].
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> Result<bool> {
        self.inner.raw().acquire_python(block, timeout, true)
    }

    /// Python's `release()`: drops one level taken with [`acquire`](Self::acquire).
    ///
    /// # Errors
    /// [`Error::NotOwner`](crate::Error::NotOwner) when another thread or process holds it,
    /// [`Error::NotLocked`](crate::Error::NotLocked) when nobody does (Python's "attempt to release
    /// recursive lock not owned by thread"), [`Error::HeldByGuard`](crate::Error::HeldByGuard) for
    /// a level held through a guard.
    pub fn release(&self) -> Result<()> {
        self.inner.release()
    }

    /// Whether a holder died or panicked while holding it.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Declares the data consistent again after a poisoning.
    pub fn clear_poison(&self) {
        self.inner.clear_poison();
    }

    /// Whether anyone holds it right now (a snapshot).
    #[doc(alias = "locked")]
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    pub(crate) fn raw(&self) -> &crate::sync::mutex::RawLock {
        self.inner.raw()
    }

    /// Whether the calling thread holds it.
    pub fn is_owned_by_current_thread(&self) -> bool {
        self.inner.raw().is_held_by_current_thread()
    }

    /// The name, for a named lock.
    pub fn name(&self) -> Option<&str> {
        self.inner.name()
    }

    /// Removes the name; attached handles keep working.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if it was already unlinked.
    pub fn unlink(&self) -> Result<()> {
        self.inner.unlink()
    }
}
