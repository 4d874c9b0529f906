//! `Mutex<T>` and `Lock`: a lock that survives the death of its holder.
//!
//! The lock word is glibc's robust, process-shared, error-checking `pthread_mutex_t`
//! ([`RobustMutex`]), plus a poison flag:
//!
//! | state                         | lock word (owner TID) | `poisoned` | next `lock()` returns           |
//! |-------------------------------|-----------------------|------------|---------------------------------|
//! | free                          | 0                     | 0          | `Ok(guard)`                     |
//! | held                          | owner's TID           | 0          | blocks, then as above           |
//! | holder died holding it        | TID \| OWNER_DIED     | 0 → 1      | `Err(Poisoned(guard))`          |
//! | holder panicked holding it    | 0                     | 1          | `Err(Poisoned(guard))`          |
//! | poisoned, then `clear_poison` | 0                     | 0          | `Ok(guard)`                     |
//!
//! When a holder dies the kernel walks its robust list, sets OWNER_DIED in the word and wakes one
//! waiter; glibc returns EOWNERDEAD to it. We mark the mutex consistent at once (so it stays
//! usable for ever) and set `poisoned`, which every later locker sees until `clear_poison()`.
//! Uncontended lock and unlock are one CAS each in glibc: no syscall, no clock read.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytemuck::Pod;
use static_assertions::{const_assert, const_assert_eq};

use crate::error::{Error, LockError, LockResult, PoisonError, Result};
use crate::layout::{self, CACHE_LINE, Kind, ShmSafe};
use crate::segment::{self, Segment, Spec};
use crate::sys::Errno;
use crate::sys::clock::{Deadline, MonoTime};
use crate::sys::pthread::{FUTEX_TID_MASK, LockStatus, RobustMutex};

/// How many times `lock` re-checks a held lock before sleeping in the kernel (about 1 µs).
const SPIN_LIMIT: u32 = 64;

/// The robust lock word shared by every locked object, on its own cache line.
#[repr(C, align(64))]
pub(crate) struct RawLock {
    mutex: RobustMutex,
    /// 1 once a holder died or panicked while holding the lock, until `clear_poison`.
    poisoned: AtomicU32,
}

const_assert_eq!(std::mem::size_of::<RawLock>(), CACHE_LINE);
const_assert_eq!(std::mem::align_of::<RawLock>(), CACHE_LINE);
const_assert_eq!(std::mem::offset_of!(RawLock, mutex), 0);
const_assert_eq!(std::mem::offset_of!(RawLock, poisoned), 40);

// SAFETY: repr(C), no pointers; the pthread mutex is only touched through glibc and the flag is
// atomic; layout asserted above.
unsafe impl ShmSafe for RawLock {}

/// How long a lock attempt may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Not at all.
    No,
    /// Until the deadline (`None`: for ever).
    Until(Deadline),
}

impl Wait {
    /// Python's block/timeout rule: `block == false` ignores the timeout.
    pub(crate) fn python(block: bool, timeout: Option<Duration>) -> Wait {
        match (block, timeout) {
            (false, _) => Wait::No,
            (true, t) => Wait::Until(crate::sys::clock::deadline_after(t)),
        }
    }
}

impl RawLock {
    /// All-zero storage, to be initialised with [`init`](Self::init) before use.
    pub(crate) const fn zeroed() -> RawLock {
        RawLock { mutex: RobustMutex::zeroed(), poisoned: AtomicU32::new(0) }
    }

    /// Initialises the lock in place.
    ///
    /// # Safety
    /// `p` must be valid for writes, aligned, and unused by anyone else until this returns.
    pub(crate) unsafe fn init(p: *mut RawLock, recursive: bool) -> Result<()> {
        // SAFETY: the caller guarantees `p` is valid and aligned, so projecting to a field of
        // `*p` stays in bounds; no reference is created.
        let mutex = unsafe { &raw mut (*p).mutex };
        // SAFETY: forwarded from the caller; `mutex` is the first field of `*p`, unused by others.
        unsafe { RobustMutex::init(mutex, recursive) }.map_err(|e| Error::os("pthread_mutex_init", e))?;
        // SAFETY: as for `mutex`.
        let poisoned = unsafe { &raw mut (*p).poisoned };
        // SAFETY: `poisoned` is a field of `*p`, valid for writes, aligned, and nobody else can see it yet.
        unsafe { poisoned.write(AtomicU32::new(0)) };
        Ok(())
    }

    /// Acquires the lock; on success `make` builds the guard. A poisoned acquisition still
    /// returns the guard, inside `LockError::Poisoned`.
    #[inline(always)]
    pub(crate) fn acquire<G>(&self, wait: Wait, make: impl FnOnce() -> G) -> LockResult<G> {
        let rc = self.mutex.try_lock_raw();
        if rc.is_ok() && self.poisoned.load(Ordering::Relaxed) == 0 {
            return Ok(make());
        }
        self.acquire_slow(rc.status(), wait, make)
    }

    #[inline(never)]
    fn acquire_slow<G>(&self, first: LockStatus, wait: Wait, make: impl FnOnce() -> G) -> LockResult<G> {
        let status = match first {
            LockStatus::Busy => match wait {
                Wait::No => return Err(LockError::WouldBlock),
                Wait::Until(deadline) => self.lock_slow(deadline),
            },
            other => other,
        };
        match status {
            LockStatus::Acquired => {}
            LockStatus::OwnerDied => {
                // We hold the lock; make it usable again and remember the damage. If this
                // fails the mutex is unusable anyway and glibc reports it to the next locker.
                let _ = self.mutex.make_consistent();
                self.poisoned.store(1, Ordering::Relaxed);
            }
            LockStatus::Busy => return Err(LockError::WouldBlock),
            LockStatus::WouldDeadlock => return Err(LockError::WouldDeadlock),
            LockStatus::NotRecoverable => return Err(LockError::Unrecoverable),
            LockStatus::TooManyRecursions => return Err(LockError::TooManyRecursions),
        }
        let guard = make();
        if self.poisoned.load(Ordering::Relaxed) != 0 {
            return Err(LockError::Poisoned(PoisonError::new(guard)));
        }
        Ok(guard)
    }

    #[cold]
    fn lock_slow(&self, deadline: Deadline) -> LockStatus {
        // Spin briefly while the holder is likely about to release: a sleep and a wake cost
        // microseconds. Stop early with more processes than cores (the holder needs our core).
        for _ in 0..SPIN_LIMIT {
            std::hint::spin_loop();
            if self.mutex.word() & FUTEX_TID_MASK == 0 {
                match self.mutex.try_lock() {
                    LockStatus::Busy => {}
                    done => return done,
                }
            }
        }
        match deadline {
            None => self.mutex.lock(),
            Some(d) => self.mutex.lock_until(Some(d)),
        }
    }

    /// Releases one level of the lock.
    ///
    /// # Errors
    /// [`Error::NotLocked`] if nobody holds it, [`Error::NotOwner`] if another thread does.
    #[inline]
    pub(crate) fn release(&self) -> Result<()> {
        match self.mutex.unlock() {
            Ok(()) => Ok(()),
            Err(Errno::EPERM) if self.mutex.word() & FUTEX_TID_MASK == 0 => Err(Error::NotLocked),
            Err(Errno::EPERM) => Err(Error::NotOwner),
            Err(e) => Err(Error::os("pthread_mutex_unlock", e)),
        }
    }

    /// Marks the protected data as possibly inconsistent (a holder panicked).
    pub(crate) fn poison(&self) {
        self.poisoned.store(1, Ordering::Relaxed);
    }

    /// Whether a holder died or panicked while holding the lock since the last `clear_poison`.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed) != 0
    }

    /// Accepts the current state of the data as consistent.
    pub(crate) fn clear_poison(&self) {
        self.poisoned.store(0, Ordering::Relaxed);
    }

    /// Whether anyone holds the lock right now (a snapshot).
    pub(crate) fn is_locked(&self) -> bool {
        self.mutex.word() & FUTEX_TID_MASK != 0
    }

    /// Whether some thread of this process holds the lock (a snapshot; a syscall when held).
    pub(crate) fn is_held_by_this_process(&self) -> bool {
        let owner = self.mutex.word() & FUTEX_TID_MASK;
        owner != 0 && crate::sys::proc::is_thread_of_this_process(owner as i32)
    }

    /// Whether the kernel marked the lock's holder dead and no one has taken it since.
    pub(crate) fn owner_died(&self) -> bool {
        self.mutex.word() & crate::sys::pthread::FUTEX_OWNER_DIED != 0
    }

    /// Whether the calling thread holds the lock (a robust mutex records its owner's TID).
    pub(crate) fn is_held_by_current_thread(&self) -> bool {
        let owner = self.mutex.word() & FUTEX_TID_MASK;
        owner != 0 && owner == crate::sys::proc::gettid() as u32
    }
}

/// Keeps `seg` mapped past its last handle while a thread of this process holds the `RawLock`
/// that starts its payload (see [`Segment::keep_mapped_while`]: the holder's robust list links
/// through the lock's bytes).
pub(crate) fn keep_mapped_while_held_here(seg: &mut Segment) {
    fn held_here(seg: &Segment) -> bool {
        // SAFETY: only installed on segments whose payload starts with a RawLock initialised
        // before publication; it is read through glibc's word and atomics only.
        let lock = unsafe { &*seg.payload().cast::<RawLock>() };
        lock.is_held_by_this_process()
    }
    seg.keep_mapped_while(held_here);
}

/// Where the data of a locked object starts within its payload: after the lock's cache line.
pub(crate) const fn data_offset(align: usize) -> usize {
    layout::align_up(std::mem::size_of::<RawLock>(), align)
}

const_assert!(data_offset(1) == CACHE_LINE);

/// Grants access to the data protected by a lock; releases the lock when dropped.
///
/// Like `std::sync::MutexGuard`: it derefs to the data and is not `Send` (the lock belongs to the
/// thread that took it). Dropping it while the thread panics poisons the lock.
#[must_use = "if unused the lock is released at once"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a RawLock,
    data: *mut T,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing a guard between threads only hands out `&T`, which is fine when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// A guard over `data` for a lock the caller just acquired.
    pub(crate) fn new(lock: &'a RawLock, data: *mut T) -> Self {
        MutexGuard { lock, data, _not_send: PhantomData }
    }

    /// The lock this guard holds (for `Condition`, which releases and re-takes it).
    pub(crate) fn raw_lock(&self) -> &'a RawLock {
        self.lock
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lock is held for the guard's lifetime, so no other thread or process
        // touches the data; it points into a mapping that outlives the guard and holds a
        // valid `T` (Pod: every bit pattern is valid, even after a holder died mid-write).
        unsafe { &*self.data }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference in this process and
        // the lock excludes every other process.
        unsafe { &mut *self.data }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.lock.poison();
        }
        // We hold the lock (the guard exists only after a successful acquisition on this
        // thread), so this cannot fail.
        self.lock.mutex.unlock_raw();
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// A mutual-exclusion lock around a `T` in shared memory, usable from every process that maps it.
///
/// Python's `multiprocessing.Lock` plus the data it protects, and unlike Python's it survives the
/// death of its holder: the next locker gets [`LockError::Poisoned`] (with the guard) instead of
/// waiting for ever. Anonymous mutexes ([`new`](Self::new)) are inherited by forked children;
/// named ones ([`create`](Self::create) / [`open`](Self::open)) are attached by name.
///
/// # Example
/// ```
/// use shmproc::{Mutex, Process};
///
/// let counter = Mutex::new(0u64)?;
/// let child = Process::new({
///     let counter = counter.clone();
///     move || {
///         for _ in 0..1000 {
///             *counter.lock().expect("lock") += 1;
///         }
///     }
/// });
/// child.start()?;
/// for _ in 0..1000 {
///     *counter.lock()? += 1;
/// }
/// child.join()?;
/// assert_eq!(*counter.lock()?, 2000);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Mutex<T> {
    seg: std::sync::Arc<Segment>,
    /// The lock at the start of the payload (computed once: the hot path reads no header).
    lock: *const RawLock,
    /// The data after the lock's cache line.
    data: *mut T,
}

impl<T> Clone for Mutex<T> {
    /// Another handle to the same mutex (the mapping is shared, not copied).
    fn clone(&self) -> Self {
        Mutex { seg: self.seg.clone(), lock: self.lock, data: self.data }
    }
}

impl<T> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mutex")
            .field("name", &self.seg.name())
            .field("locked", &self.raw().is_locked())
            .field("poisoned", &self.raw().is_poisoned())
            .finish()
    }
}

/// A lock with no data: Python's `multiprocessing.Lock`.
///
/// Unlike Python's, it is owned: only the process and thread that acquired it may release it,
/// which is what lets it survive the death of its holder. For Python's hand-over from one
/// process to another, use a `Semaphore` of 1.
pub type Lock = Mutex<()>;

impl<T: Pod> Mutex<T> {
    fn spec(kind: Kind) -> Spec {
        Spec::of::<RawLock, T>(kind, 0, data_offset(std::mem::align_of::<T>()) + std::mem::size_of::<T>())
    }

    /// An anonymous mutex holding `value`, shared with every child forked after this call.
    ///
    /// # Errors
    /// [`Error::NoSpace`] if the shared memory cannot be reserved, [`Error::Os`] otherwise.
    pub fn new(value: T) -> Result<Self> {
        Self::create_kind(None, Kind::Mutex, value)
    }

    /// A named mutex holding `value`, attachable from any process of this user with
    /// [`open`](Self::open).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::InvalidName`], [`Error::PermissionDenied`],
    /// [`Error::NoSpace`].
    pub fn create(name: &str, value: T) -> Result<Self> {
        Self::create_kind(Some(name), Kind::Mutex, value)
    }

    /// Attaches to the named mutex created by [`create`](Self::create), waiting up to two seconds
    /// for a creator still initialising it.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::WrongKind`], [`Error::WrongType`] (created for another
    /// `T`), [`Error::WrongVersion`], [`Error::NotReady`], [`Error::PermissionDenied`].
    pub fn open(name: &str) -> Result<Self> {
        Self::open_kind(name, Kind::Mutex, segment::DEFAULT_OPEN_TIMEOUT)
    }

    pub(crate) fn create_kind(name: Option<&str>, kind: Kind, value: T) -> Result<Self> {
        Self::create_raw(name, kind, value, false)
    }

    pub(crate) fn create_raw(name: Option<&str>, kind: Kind, value: T, recursive: bool) -> Result<Self> {
        let seg = Segment::create(name, Self::spec(kind), |p| {
            // SAFETY: the payload is ours alone until `create` publishes it, aligned for
            // RawLock (Spec::of takes its alignment) and large enough for lock + data.
            unsafe { RawLock::init(p.cast::<RawLock>(), recursive) }?;
            let data = p.wrapping_add(data_offset(std::mem::align_of::<T>())).cast::<T>();
            // SAFETY: `data` is inside the payload, aligned for T, and unshared.
            unsafe { data.write(value) };
            Ok(())
        })?;
        Ok(Self::from_segment(seg))
    }

    pub(crate) fn open_kind(name: &str, kind: Kind, timeout: Duration) -> Result<Self> {
        Ok(Self::from_segment(Segment::open(name, Self::spec(kind), timeout)?))
    }

    fn from_segment(mut seg: Segment) -> Self {
        keep_mapped_while_held_here(&mut seg);
        let p = seg.payload();
        let data = p.wrapping_add(data_offset(std::mem::align_of::<T>())).cast::<T>();
        Mutex { seg: std::sync::Arc::new(seg), lock: p.cast::<RawLock>(), data }
    }
}

impl<T> Mutex<T> {
    #[inline(always)]
    pub(crate) fn raw(&self) -> &RawLock {
        // SAFETY: `lock` points at the start of the payload of `seg`, which `self` keeps mapped,
        // where a RawLock was initialised before the segment was published; it is only accessed
        // through glibc and atomics, so a shared reference is sound.
        unsafe { &*self.lock }
    }

    #[inline(always)]
    fn data(&self) -> *mut T {
        self.data
    }

    /// Blocks until the lock is acquired.
    ///
    /// # Errors
    /// [`LockError::Poisoned`] (with the guard: the lock *is* held) when a previous holder died
    /// or panicked while holding it; [`LockError::WouldDeadlock`] when this thread already holds
    /// it; [`LockError::Unrecoverable`] when its state was lost.
    #[inline]
    #[doc(alias = "acquire")]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw().acquire(Wait::Until(None), || MutexGuard::new(self.raw(), self.data()))
    }

    /// Acquires the lock only if it is free right now.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] when it is held, plus those of [`lock`](Self::lock).
    #[inline]
    pub fn try_lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw().acquire(Wait::No, || MutexGuard::new(self.raw(), self.data()))
    }

    /// Blocks until the lock is acquired or `timeout` passes (CLOCK_MONOTONIC).
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] on timeout, plus those of [`lock`](Self::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<MutexGuard<'_, T>> {
        self.raw().acquire(Wait::Until(Some(MonoTime::after(timeout))), || MutexGuard::new(self.raw(), self.data()))
    }

    /// Whether a holder died or panicked while holding the lock (until [`clear_poison`](Self::clear_poison)).
    pub fn is_poisoned(&self) -> bool {
        self.raw().is_poisoned()
    }

    /// Declares the data consistent again after a poisoning.
    pub fn clear_poison(&self) {
        self.raw().clear_poison();
    }

    /// Whether anyone holds the lock right now (a snapshot). Python 3.14's `locked()`.
    #[doc(alias = "locked")]
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    /// The name, for a named mutex.
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Removes the name; attached handles keep working. A no-op for anonymous mutexes.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it was already unlinked.
    pub fn unlink(&self) -> Result<()> {
        self.seg.unlink()
    }

    /// Python's `acquire(block=True, timeout=None)`: returns whether the lock was acquired, and
    /// leaves it held with no guard; release it with [`release`](Self::release).
    ///
    /// # Errors
    /// [`Error::Poisoned`] when a previous holder died or panicked holding it: the lock is
    /// released again, call [`clear_poison`](Self::clear_poison) and retry.
    /// [`Error::WouldDeadlock`] when this thread holds it already.
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> Result<bool> {
        match self.raw().acquire(Wait::python(block, timeout), || ()) {
            Ok(()) => Ok(true),
            Err(LockError::WouldBlock) => Ok(false),
            Err(LockError::Poisoned(_)) => {
                let _ = self.raw().release();
                Err(Error::Poisoned)
            }
            Err(e) => Err(e.without_guard()),
        }
    }

    /// Python's `release()`: releases a lock taken with [`acquire`](Self::acquire).
    ///
    /// # Errors
    /// [`Error::NotLocked`] when nobody holds it (Python's "released too many times"),
    /// [`Error::NotOwner`] when another thread or process does.
    pub fn release(&self) -> Result<()> {
        self.raw().release()
    }
}

// SAFETY: the lock serialises every access to the T in shared memory, across threads and processes.
unsafe impl<T: Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Mutex<T> {}
