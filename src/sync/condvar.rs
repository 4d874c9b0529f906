//! `Condition`: wait for a notification while holding a lock, across processes.
//!
//! The condition's own state ([`CondCore`](super::condcore::CondCore): a futex sequence word and
//! the `{waiting, tokens}` counts) lives in its own segment; the lock is a [`Mutex`], [`Lock`],
//! [`ReentrantMutex`] or [`RLock`](crate::RLock) the caller provides. `notify(n)` wakes exactly
//! `min(n, waiting)` waiters and makes no syscall when nobody waits.
//!
//! A waiter sleeps in slices of [`DEATH_POLL`]: if the lock's holder dies while it waits (the
//! lock word still names a thread that `/proc` says is gone, or the lock becomes poisoned), the
//! waiter stops waiting, re-takes the lock (taking it over from the dead owner) and returns the
//! poison error instead of hanging.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, LockError, LockResult, PoisonError, Result};
use crate::layout::{Kind, ShmSafe};
use crate::segment::{self, Segment, Spec};
use crate::sync::condcore::CondCore;
use crate::sync::mutex::{Lock, Mutex, MutexGuard, RawLock};
use crate::sync::rlock::{ReentrantMutex, ReentrantMutexGuard};
use crate::sys::clock::{Deadline, deadline_after};

/// How often a waiter checks whether the lock's holder died.
pub const DEATH_POLL: Duration = Duration::from_millis(100);

// SAFETY: repr(C) of two AtomicU32 and an AtomicU64, no pointers; layout asserted in its core module.
unsafe impl ShmSafe for CondCore {}

mod sealed {
    use crate::sync::mutex::RawLock;

    /// The lock word behind a lock or guard (a field the public cannot read).
    pub struct RawRef<'a>(pub(crate) &'a RawLock);

    pub trait LockSealed {
        fn raw_ref(&self) -> RawRef<'_>;
        /// Whether the lock may be taken again by its holder (an `RLock`).
        fn reentrant(&self) -> bool;
    }

    pub trait GuardSealed {
        fn raw_ref(&self) -> RawRef<'_>;
    }
}

/// A lock a [`Condition`] can be built over: [`Mutex<T>`] (so [`Lock`]) or [`ReentrantMutex<T>`]
/// (so [`RLock`](crate::RLock)). Sealed.
pub trait ConditionLock: sealed::LockSealed + Clone {}

/// A guard a [`Condition`] can wait with: [`MutexGuard`] or [`ReentrantMutexGuard`]. Sealed.
pub trait ConditionGuard: sealed::GuardSealed {}

impl<T> sealed::LockSealed for Mutex<T> {
    fn raw_ref(&self) -> sealed::RawRef<'_> {
        sealed::RawRef(self.raw())
    }
    fn reentrant(&self) -> bool {
        self.reentrant
    }
}
impl<T> ConditionLock for Mutex<T> {}

impl<T> sealed::LockSealed for ReentrantMutex<T> {
    fn raw_ref(&self) -> sealed::RawRef<'_> {
        sealed::RawRef(self.raw())
    }
    fn reentrant(&self) -> bool {
        true
    }
}
impl<T> ConditionLock for ReentrantMutex<T> {}

impl<T: ?Sized> sealed::GuardSealed for MutexGuard<'_, T> {
    fn raw_ref(&self) -> sealed::RawRef<'_> {
        sealed::RawRef(MutexGuard::raw_lock(self))
    }
}
impl<T: ?Sized> ConditionGuard for MutexGuard<'_, T> {}

impl<T> sealed::GuardSealed for ReentrantMutexGuard<'_, T> {
    fn raw_ref(&self) -> sealed::RawRef<'_> {
        sealed::RawRef(ReentrantMutexGuard::raw_lock(self))
    }
}
impl<T> ConditionGuard for ReentrantMutexGuard<'_, T> {}

/// Whether a timed wait on a [`Condition`] ended by timeout (like std's `WaitTimeoutResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True when the wait ended without a notification.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable shared between processes: Python's `multiprocessing.Condition`.
///
/// Waits take and return the lock's guard, like `std::sync::Condvar`; the guard must come from
/// this condition's lock. Waiting releases every recursion level of an [`RLock`](crate::RLock) and re-takes
/// them before returning. `notify` and `notify_all` need the lock held by the caller.
///
/// # Example
/// ```
/// use std::time::Duration;
/// let cond = shmproc::Condition::new()?;
/// let guard = cond.lock().lock()?;
/// // Nobody notifies: the wait times out and gives the guard back.
/// let (guard, r) = cond.wait_timeout(guard, Duration::from_millis(10))?;
/// assert!(r.timed_out());
/// cond.notify_all()?; // no waiter: no syscall
/// drop(guard);
/// # Ok::<(), shmproc::Error>(())
/// ```
///
/// Two processes: the child waits until the parent publishes a value.
/// ```
/// use shmproc::{Condition, Mutex, Process};
///
/// let cond = Condition::with_lock(Mutex::new(0u32)?)?;
/// let child = Process::new({
///     let cond = cond.clone();
///     move || {
///         let guard = cond.lock().lock().expect("lock");
///         let guard = cond.wait_while(guard, |v| **v == 0).expect("wait");
///         assert_eq!(*guard, 42);
///     }
/// });
/// child.start()?;
/// {
///     let mut guard = cond.lock().lock()?;
///     *guard = 42;
///     cond.notify_all()?;
/// }
/// child.join()?;
/// assert_eq!(child.exitcode(), Some(0));
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Condition<L: ConditionLock = Lock> {
    lock: L,
    seg: Arc<Segment>,
}

impl<L: ConditionLock> Clone for Condition<L> {
    /// Another handle to the same condition and lock.
    fn clone(&self) -> Self {
        Condition { lock: self.lock.clone(), seg: self.seg.clone() }
    }
}

impl<L: ConditionLock> std::fmt::Debug for Condition<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition").field("name", &self.name()).field("waiting", &self.n_waiting()).finish()
    }
}

impl Condition<Lock> {
    /// An anonymous condition over a fresh anonymous [`Lock`].
    ///
    /// # Errors
    /// [`Error::NoSpace`] or [`Error::Os`] if the shared memory cannot be made.
    pub fn new() -> Result<Self> {
        Self::with_lock(Lock::new(())?)
    }
}

impl<L: ConditionLock> Condition<L> {
    fn spec() -> Spec {
        Spec::of::<CondCore, CondCore>(Kind::Condition, 0, std::mem::size_of::<CondCore>())
    }

    fn create_in(name: Option<&str>, lock: L) -> Result<Self> {
        let seg = Segment::create(name, Self::spec(), |p| {
            // SAFETY: the payload is ours alone until `create` publishes it, aligned and sized
            // for a CondCore (Spec::of).
            unsafe { p.cast::<CondCore>().write(CondCore::new()) };
            Ok(())
        })?;
        Ok(Condition { lock, seg: Arc::new(seg) })
    }

    /// An anonymous condition over `lock` (a `Mutex`, `Lock`, `ReentrantMutex` or `RLock`).
    ///
    /// # Errors
    /// As [`Condition::new`].
    pub fn with_lock(lock: L) -> Result<Self> {
        Self::create_in(None, lock)
    }

    /// A named condition over `lock`; other processes attach with [`open`](Self::open) and the
    /// same lock (e.g. opened by its own name).
    ///
    /// # Errors
    /// As [`Condition::new`], plus [`Error::AlreadyExists`], [`Error::InvalidName`].
    pub fn create(name: &str, lock: L) -> Result<Self> {
        Self::create_in(Some(name), lock)
    }

    /// Attaches to the named condition made by [`create`](Self::create), over `lock`, which must
    /// be the lock it was created with.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::WrongKind`], [`Error::NotReady`].
    pub fn open(name: &str, lock: L) -> Result<Self> {
        let seg = Segment::open(name, Self::spec(), segment::DEFAULT_OPEN_TIMEOUT)?;
        Ok(Condition { lock, seg: Arc::new(seg) })
    }

    fn core(&self) -> &CondCore {
        self.seg.payload_ref::<CondCore>()
    }

    /// The lock this condition waits with: lock it to get the guard `wait` takes.
    pub fn lock(&self) -> &L {
        &self.lock
    }

    /// Waits on `raw` (held by the caller): releases every level, sleeps, re-takes them.
    /// Returns (notified, poisoned).
    fn wait_raw(&self, raw: &RawLock, deadline: Deadline) -> (bool, bool) {
        let suspended = Cell::new(None);
        let poisoned = Cell::new(false);
        let poisoned_before = raw.is_poisoned();
        let notified = self.core().wait(
            deadline,
            // The caller holds the lock (a guard of this thread, or the ownership check of
            // `wait_python`), so this releases every level and cannot fail.
            || suspended.set(raw.suspend().ok()),
            || match suspended.take() {
                Some(s) => poisoned.set(raw.resume(s)),
                None => poisoned.set(true),
            },
            |d| crate::sys::clock::slice_deadline(d, DEATH_POLL),
            || raw.owner_died() || (!poisoned_before && raw.is_poisoned()),
        );
        (notified, poisoned.get())
    }

    fn wait_guard<G: ConditionGuard>(&self, guard: G, deadline: Deadline) -> LockResult<(G, bool)> {
        let (notified, poisoned) = self.wait_raw(guard.raw_ref().0, deadline);
        if poisoned { Err(LockError::Poisoned(PoisonError::new((guard, notified)))) } else { Ok((guard, notified)) }
    }

    /// Releases the lock, blocks until notified, and re-takes the lock.
    ///
    /// # Errors
    /// [`LockError::Poisoned`] (with the guard: the lock is held again) when a holder of the lock
    /// died or panicked meanwhile, including while this process waited.
    pub fn wait<G: ConditionGuard>(&self, guard: G) -> LockResult<G> {
        match self.wait_guard(guard, None) {
            Ok((g, _)) => Ok(g),
            Err(e) => Err(e.map(|(g, _)| g)),
        }
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout`: the result says whether it timed
    /// out (a notification that raced with the timeout counts as a notification).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout<G: ConditionGuard>(&self, guard: G, timeout: Duration) -> LockResult<(G, WaitTimeoutResult)> {
        match self.wait_guard(guard, crate::sys::clock::deadline_in(timeout)) {
            Ok((g, n)) => Ok((g, WaitTimeoutResult(!n))),
            Err(e) => Err(e.map(|(g, n)| (g, WaitTimeoutResult(!n)))),
        }
    }

    /// Releases and re-takes the lock once without sleeping (Python's `wait(0)`): always a timeout
    /// unless a notification arrives in between.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn try_wait<G: ConditionGuard>(&self, guard: G) -> LockResult<(G, WaitTimeoutResult)> {
        self.wait_timeout(guard, Duration::ZERO)
    }

    /// Waits while `condition` holds (checked first, with the lock held).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_while<G: ConditionGuard>(
        &self,
        mut guard: G,
        mut condition: impl FnMut(&mut G) -> bool,
    ) -> LockResult<G> {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Python's `wait_for(predicate, timeout)`: waits until `predicate` holds (checked first) or
    /// the timeout passes (`None`: for ever); returns the guard and the last predicate value.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_for<G: ConditionGuard>(
        &self,
        mut guard: G,
        mut predicate: impl FnMut(&mut G) -> bool,
        timeout: Option<Duration>,
    ) -> LockResult<(G, bool)> {
        let deadline = deadline_after(timeout);
        loop {
            if predicate(&mut guard) {
                return Ok((guard, true));
            }
            if crate::sys::clock::deadline_passed(deadline) {
                return Ok((guard, false));
            }
            guard = match self.wait_guard(guard, deadline) {
                Ok((g, _)) => g,
                Err(e) => {
                    return Err(e.map(|(mut g, _)| {
                        let ok = predicate(&mut g);
                        (g, ok)
                    }));
                }
            };
        }
    }

    /// Python's `acquire(block=True, timeout=None)` on the condition's lock.
    ///
    /// # Errors
    /// As [`Mutex::acquire`].
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> Result<bool> {
        self.lock.raw_ref().0.acquire_python(block, timeout, self.lock.reentrant())
    }

    /// Python's `release()` on the condition's lock (one level).
    ///
    /// # Errors
    /// [`Error::NotLocked`] / [`Error::NotOwner`] / [`Error::HeldByGuard`] as [`Mutex::release`].
    pub fn release(&self) -> Result<()> {
        self.lock.raw_ref().0.release_python()
    }

    /// Python's `wait(timeout=None) -> bool` for a lock taken with [`acquire`](Self::acquire):
    /// returns whether it was notified. The lock is held again on return, even on error.
    ///
    /// # Errors
    /// [`Error::LockNotHeld`] when the calling thread does not hold the lock (Python's
    /// "must acquire() condition before using wait()"); [`Error::Poisoned`] when a holder died
    /// or panicked meanwhile (the lock is held: call `lock().clear_poison()`).
    #[doc(alias = "wait")]
    pub fn wait_python(&self, timeout: Option<Duration>) -> Result<bool> {
        let raw = self.lock.raw_ref().0;
        if !raw.is_held_by_current_thread() {
            return Err(Error::LockNotHeld);
        }
        match self.wait_raw(raw, deadline_after(timeout)) {
            (_, true) => Err(Error::Poisoned),
            (notified, false) => Ok(notified),
        }
    }

    /// Wakes up to `n` waiters (exactly `min(n, waiting)` return notified). No syscall when
    /// nobody waits. Every sleeper is woken to look (a futex cannot pick which ones); those not
    /// chosen go back to sleep, so with many waiters `notify(1)` costs one wake-up each.
    ///
    /// # Errors
    /// [`Error::LockNotHeld`] when the calling thread does not hold the lock (Python's "lock is
    /// not owned"). The check reads the lock word and a thread-local: no syscall.
    pub fn notify(&self, n: u32) -> Result<()> {
        if !self.lock.raw_ref().0.is_held_by_current_thread() {
            return Err(Error::LockNotHeld);
        }
        let core = self.core();
        if core.waiting() == 0 {
            return Ok(());
        }
        core.notify(n);
        Ok(())
    }

    /// Wakes one waiter.
    ///
    /// # Errors
    /// As [`notify`](Self::notify).
    pub fn notify_one(&self) -> Result<()> {
        self.notify(1)
    }

    /// Wakes every waiter.
    ///
    /// # Errors
    /// As [`notify`](Self::notify).
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX)
    }

    /// How many waiters have not been notified yet (a snapshot).
    pub fn n_waiting(&self) -> u32 {
        self.core().waiting()
    }

    /// The name, for a named condition.
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Removes the condition's name (not the lock's); attached handles keep working.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it was already unlinked.
    pub fn unlink(&self) -> Result<()> {
        self.seg.unlink()
    }
}
