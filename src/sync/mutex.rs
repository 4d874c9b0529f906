//! `Mutex<T>` and `Lock`: a lock that survives the death of its holder.
//!
//! The lock word is a futex word holding the owner's kernel thread id, plus a poison flag and
//! the owner's identity (thread id packed with its start time):
//!
//! | state                         | `word`                  | `poisoned` | next `lock()` returns     |
//! |-------------------------------|-------------------------|------------|---------------------------|
//! | free                          | 0                       | 0          | `Ok(guard)`               |
//! | held                          | owner TID               | 0          | spins, sleeps, as above   |
//! | held, someone sleeps          | owner TID \| WAITERS    | 0          | as above                  |
//! | holder died holding it        | dead TID (\| WAITERS)   | 0 → 1      | `Err(Poisoned(guard))`    |
//! | holder panicked holding it    | 0                       | 1          | `Err(Poisoned(guard))`    |
//! | poisoned, then `clear_poison` | 0                       | 0          | `Ok(guard)`               |
//!
//! Uncontended lock and unlock are one atomic each (CAS 0 → TID, swap → 0) plus a plain store of
//! the owner identity: no syscall, no list to maintain. Unlock wakes one sleeper only when the
//! WAITERS bit says someone sleeps.
//!
//! **Owner death.** A contended locker spins about a microsecond, then sleeps on the futex in
//! slices (10 ms, doubling to 200 ms). When a slice ends with the lock still held it asks
//! `/proc/<tid>/stat` whether the owner thread lives (same id *and* same start time, so a recycled
//! id is not mistaken for it); if the owner is gone or a zombie it takes the lock over with one
//! CAS from the dead TID and reports `Poisoned`. Every waiter, including those already asleep
//! when the holder was killed, notices within a slice: never a hang. This replaces glibc's
//! robust mutex (the kernel's robust list): that one reports death at once but costs 2.4–3× a
//! futex lock uncontended on this machine, and its list links through the lock's own bytes,
//! so unmapping a held lock corrupted the holder's list (see the CHANGELOG).

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytemuck::Pod;
use static_assertions::{const_assert, const_assert_eq};

use crate::error::{Error, LockError, LockResult, PoisonError, Result};
use crate::layout::{self, CACHE_LINE, Kind, ShmSafe};
use crate::segment::{self, Segment, Spec};
use crate::sys::clock::{Deadline, MonoTime};
use crate::sys::futex;
use crate::sys::proc::{ThreadIdentity, owner_is_dead, thread_identity};

/// How many times a contended `lock` re-checks the word before sleeping (about 1 µs).
const SPIN_LIMIT: u32 = 64;
/// The first sleep of a contended locker before it checks whether the owner lives.
const FIRST_DEATH_POLL: Duration = Duration::from_millis(10);
/// The longest sleep between two owner-liveness checks.
const MAX_DEATH_POLL: Duration = Duration::from_millis(200);

use super::lockword::{self, Step, TID_MASK};

/// The robust lock word shared by every locked object, on its own cache line.
#[repr(C, align(64))]
pub(crate) struct RawLock {
    /// 0, or the owner's TID with the WAITERS bit: the futex word.
    word: AtomicU32,
    /// 1 once a holder died or panicked while holding the lock, until `clear_poison`.
    poisoned: AtomicU32,
    /// Unused, 0. (Whether a lock is reentrant is the handle's business, never read from shared
    /// memory: a flipped bit here must not let a `Mutex` hand out a second `&mut`.)
    reserved: AtomicU32,
    /// Re-entries beyond the first (reentrant locks; written by the owner only).
    depth: AtomicU32,
    /// The owner's `ThreadIdentity::packed`, stored right after each acquisition and cleared
    /// before each release; 0 while unknown.
    owner: AtomicU64,
    /// Levels held through Python-style `acquire()` (no guard); `release()` may only drop those.
    /// Written by the owner only.
    py_levels: AtomicU32,
}

const_assert_eq!(std::mem::size_of::<RawLock>(), CACHE_LINE);
const_assert_eq!(std::mem::align_of::<RawLock>(), CACHE_LINE);
const_assert_eq!(std::mem::offset_of!(RawLock, word), 0);
const_assert_eq!(std::mem::offset_of!(RawLock, poisoned), 4);
const_assert_eq!(std::mem::offset_of!(RawLock, reserved), 8);
const_assert_eq!(std::mem::offset_of!(RawLock, depth), 12);
const_assert_eq!(std::mem::offset_of!(RawLock, owner), 16);
const_assert_eq!(std::mem::offset_of!(RawLock, py_levels), 24);

// SAFETY: repr(C), atomics only, no pointers; all-zero is a free, non-reentrant lock; layout
// asserted above.
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

/// How a contended acquisition ended.
enum Contended {
    Acquired,
    OwnerDied,
    TimedOut,
}

/// What [`RawLock::suspend`] released, for [`RawLock::resume`] to take back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Suspended {
    levels: u32,
    py_levels: u32,
}

thread_local! {
    /// The last owner a failed `try_lock` of this thread checked in /proc: (lock address,
    /// owner identity, when). A polling loop re-reads /proc at most every FIRST_DEATH_POLL.
    static LAST_TRY_CHECK: std::cell::Cell<(usize, u64, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

impl RawLock {
    /// A free lock (all-zero bytes are the same free lock).
    pub(crate) const fn new() -> RawLock {
        RawLock {
            word: AtomicU32::new(0),
            poisoned: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            depth: AtomicU32::new(0),
            owner: AtomicU64::new(0),
            py_levels: AtomicU32::new(0),
        }
    }

    /// Initialises the lock in place.
    ///
    /// # Safety
    /// `p` must be valid for writes, aligned, and unused by anyone else until this returns.
    pub(crate) unsafe fn init(p: *mut RawLock) {
        // SAFETY: guaranteed by the caller.
        unsafe { p.write(RawLock::new()) };
    }

    /// Whether the word's owner TID is the calling thread *and* the recorded owner is this very
    /// thread (not a dead thread whose id was recycled for us).
    #[inline]
    fn owned_by(&self, w: u32, me: ThreadIdentity) -> bool {
        w & TID_MASK == me.tid && self.owner.load(Ordering::Relaxed) == me.packed
    }

    /// Acquires the lock; on success `make` builds the guard. A poisoned acquisition still
    /// returns the guard, inside `LockError::Poisoned`. `reentrant` says whether the calling
    /// handle may take it again while holding it (else that is `WouldDeadlock`).
    #[inline(always)]
    pub(crate) fn acquire<G>(&self, wait: Wait, reentrant: bool, make: impl FnOnce() -> G) -> LockResult<G> {
        let me = thread_identity();
        if lockword::try_acquire(&self.word, me.tid) {
            self.owner.store(me.packed, Ordering::Relaxed);
            if self.poisoned.load(Ordering::Relaxed) == 0 {
                return Ok(make());
            }
            return Err(LockError::Poisoned(PoisonError::new(make())));
        }
        self.acquire_slow(me, wait, reentrant, make)
    }

    #[inline(never)]
    fn acquire_slow<G>(
        &self,
        me: ThreadIdentity,
        wait: Wait,
        reentrant: bool,
        make: impl FnOnce() -> G,
    ) -> LockResult<G> {
        let w = self.word.load(Ordering::Acquire);
        if self.owned_by(w, me) {
            if !reentrant {
                return Err(LockError::WouldDeadlock);
            }
            let depth = self.depth.load(Ordering::Relaxed);
            if depth == u32::MAX {
                return Err(LockError::TooManyRecursions);
            }
            self.depth.store(depth + 1, Ordering::Relaxed);
        } else {
            let outcome = match wait {
                // A failed try_lock asks whether the holder lives (a /proc read, only when the
                // lock is busy, at most every FIRST_DEATH_POLL per thread and owner): an
                // abandoned lock is taken over, as glibc's EOWNERDEAD would.
                Wait::No if self.try_check_due() && self.take_over_if_owner_dead(me) => Contended::OwnerDied,
                Wait::No => return Err(LockError::WouldBlock),
                Wait::Until(deadline) => self.lock_contended(me, deadline),
            };
            match outcome {
                Contended::Acquired => {}
                Contended::OwnerDied => self.poisoned.store(1, Ordering::Relaxed),
                Contended::TimedOut => return Err(LockError::WouldBlock),
            }
            self.owner.store(me.packed, Ordering::Relaxed);
            self.depth.store(0, Ordering::Relaxed);
            self.py_levels.store(0, Ordering::Relaxed);
        }
        let guard = make();
        if self.poisoned.load(Ordering::Relaxed) != 0 {
            return Err(LockError::Poisoned(PoisonError::new(guard)));
        }
        Ok(guard)
    }

    /// Rate-limits the /proc check of failed try_locks: true when this thread has not checked
    /// this lock's current owner in the last FIRST_DEATH_POLL.
    fn try_check_due(&self) -> bool {
        let key = (std::ptr::from_ref(self) as usize, self.owner.load(Ordering::Relaxed));
        let now = MonoTime::now().as_nanos();
        let (addr, owner, at) = LAST_TRY_CHECK.get();
        if (addr, owner) == key && now.saturating_sub(at) < FIRST_DEATH_POLL.as_nanos() as u64 {
            return false;
        }
        LAST_TRY_CHECK.set((key.0, key.1, now));
        true
    }

    #[cold]
    fn lock_contended(&self, me: ThreadIdentity, deadline: Deadline) -> Contended {
        // Spin briefly while the holder is likely about to release: a sleep and a wake cost
        // microseconds. Not longer: with more processes than cores the holder needs our core.
        for _ in 0..SPIN_LIMIT {
            std::hint::spin_loop();
            if self.word.load(Ordering::Relaxed) == 0 && lockword::try_acquire(&self.word, me.tid) {
                return Contended::Acquired;
            }
        }
        // The owner check runs whenever `next_check` has passed, whatever woke us (a signal, a
        // spurious wake-up or the slice's end), and once more before giving up on a deadline.
        let mut poll = FIRST_DEATH_POLL;
        let mut next_check = MonoTime::after(poll);
        let mut checked = false;
        loop {
            let expected = match lockword::contended_step(&self.word, me.tid) {
                Step::Acquired => return Contended::Acquired,
                Step::Again => continue,
                Step::Sleep(expected) => expected,
            };
            let now = MonoTime::now();
            let expired = deadline.is_some_and(|d| now >= d);
            if now >= next_check || (expired && !checked) {
                if self.take_over_if_owner_dead(me) {
                    return Contended::OwnerDied;
                }
                checked = true;
                poll = (poll * 2).min(MAX_DEATH_POLL);
                next_check = MonoTime::after(poll);
                continue;
            }
            if expired {
                return Contended::TimedOut;
            }
            let wake_by = match deadline {
                Some(d) if d < next_check => d,
                _ => next_check,
            };
            futex::wait(&self.word, expected, Some(wake_by));
        }
    }

    /// If the lock is held by a thread that has died, takes it over (one CAS from the dead
    /// owner's word) and returns true.
    #[cold]
    fn take_over_if_owner_dead(&self, me: ThreadIdentity) -> bool {
        // Acquire: pairs with the releasing swap, so `owner` is never an older holder's identity
        // (it is cleared before each release).
        let w = self.word.load(Ordering::Acquire);
        let owner = w & TID_MASK;
        if owner == 0 {
            return false;
        }
        let recorded = self.owner.load(Ordering::Relaxed);
        // Our own id in the word but another identity recorded: a dead thread whose id the
        // kernel recycled for us. Otherwise ask /proc.
        let dead =
            if owner == me.tid { recorded != me.packed && recorded != 0 } else { owner_is_dead(owner, recorded) };
        dead && lockword::take_over(&self.word, w, me.tid)
    }

    /// Releases one level of a lock the calling thread holds (guards: ownership is known).
    #[inline(always)]
    pub(crate) fn release_held(&self) {
        let depth = self.depth.load(Ordering::Relaxed);
        if depth != 0 {
            self.depth.store(depth - 1, Ordering::Relaxed);
            return;
        }
        self.owner.store(0, Ordering::Relaxed);
        lockword::release(&self.word);
    }

    fn check_owner(&self, me: ThreadIdentity) -> Result<()> {
        let w = self.word.load(Ordering::Acquire);
        if w & TID_MASK == 0 {
            return Err(Error::NotLocked);
        }
        if !self.owned_by(w, me) {
            return Err(Error::NotOwner);
        }
        Ok(())
    }

    /// Python's `acquire(block, timeout)`: takes one level with no guard; `release_python` gives
    /// it back. Returns whether it was acquired.
    ///
    /// # Errors
    /// [`Error::Poisoned`] (the lock is released again: clear the poison and retry),
    /// [`Error::WouldDeadlock`], [`Error::TooManyRecursions`].
    pub(crate) fn acquire_python(&self, block: bool, timeout: Option<Duration>, reentrant: bool) -> Result<bool> {
        match self.acquire(Wait::python(block, timeout), reentrant, || ()) {
            Ok(()) => {
                let n = self.py_levels.load(Ordering::Relaxed);
                self.py_levels.store(n + 1, Ordering::Relaxed);
                Ok(true)
            }
            Err(LockError::WouldBlock) => Ok(false),
            Err(LockError::Poisoned(_)) => {
                self.release_held();
                Err(Error::Poisoned)
            }
            Err(e) => Err(e.without_guard()),
        }
    }

    /// Python's `release()`: drops one level taken with [`acquire_python`](Self::acquire_python).
    ///
    /// # Errors
    /// [`Error::NotLocked`] if nobody holds it, [`Error::NotOwner`] if another thread does,
    /// [`Error::HeldByGuard`] if this thread holds it only through a guard (releasing it would let
    /// another thread in while the guard still hands out the data).
    pub(crate) fn release_python(&self) -> Result<()> {
        self.check_owner(thread_identity())?;
        let n = self.py_levels.load(Ordering::Relaxed);
        if n == 0 {
            return Err(Error::HeldByGuard);
        }
        self.py_levels.store(n - 1, Ordering::Relaxed);
        self.release_held();
        Ok(())
    }

    /// Releases every level the calling thread holds (for `Condition::wait`, which owns the
    /// guard or checked Python-style ownership), remembering them for [`resume`](Self::resume).
    ///
    /// # Errors
    /// [`Error::NotLocked`] / [`Error::NotOwner`] when the calling thread does not hold it.
    pub(crate) fn suspend(&self) -> Result<Suspended> {
        self.check_owner(thread_identity())?;
        let s = Suspended {
            levels: self.depth.load(Ordering::Relaxed) + 1,
            py_levels: self.py_levels.load(Ordering::Relaxed),
        };
        self.depth.store(0, Ordering::Relaxed);
        self.py_levels.store(0, Ordering::Relaxed);
        self.release_held();
        Ok(s)
    }

    /// Takes back what [`suspend`](Self::suspend) released, blocking; returns whether the lock
    /// was poisoned meanwhile (it is held either way).
    pub(crate) fn resume(&self, s: Suspended) -> bool {
        // Not reentrant: `suspend` released every level of this thread.
        let poisoned = match self.acquire(Wait::Until(None), false, || ()) {
            Ok(()) => false,
            Err(LockError::Poisoned(_)) => true,
            // A blocking acquire with no deadline ends only acquired (possibly poisoned): a
            // relock is impossible after `suspend` released every level of this thread.
            Err(_) => true,
        };
        self.depth.store(s.levels.saturating_sub(1), Ordering::Relaxed);
        self.py_levels.store(s.py_levels, Ordering::Relaxed);
        poisoned
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
        self.word.load(Ordering::Relaxed) & TID_MASK != 0
    }

    /// Whether the lock is held by a thread that has died (a `/proc` read when it is held).
    pub(crate) fn owner_died(&self) -> bool {
        let w = self.word.load(Ordering::Acquire);
        let owner = w & TID_MASK;
        owner != 0 && owner_is_dead(owner, self.owner.load(Ordering::Relaxed))
    }

    /// Whether the calling thread holds the lock. No syscall.
    pub(crate) fn is_held_by_current_thread(&self) -> bool {
        self.owned_by(self.word.load(Ordering::Relaxed), thread_identity())
    }
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
        // The guard exists only after a successful acquisition on this thread: we hold it.
        self.lock.release_held();
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
    /// Whether this handle is the inside of a `ReentrantMutex` (set by the constructor, from
    /// the kind of segment: never read from shared memory).
    pub(crate) reentrant: bool,
}

impl<T> Clone for Mutex<T> {
    /// Another handle to the same mutex (the mapping is shared, not copied).
    fn clone(&self) -> Self {
        Mutex { seg: self.seg.clone(), lock: self.lock, data: self.data, reentrant: self.reentrant }
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
            unsafe { RawLock::init(p.cast::<RawLock>()) };
            let data = p.wrapping_add(data_offset(std::mem::align_of::<T>())).cast::<T>();
            // SAFETY: `data` is inside the payload, aligned for T, and unshared.
            unsafe { data.write(value) };
            Ok(())
        })?;
        Ok(Self::from_segment(seg, recursive))
    }

    pub(crate) fn open_kind(name: &str, kind: Kind, timeout: Duration) -> Result<Self> {
        Ok(Self::from_segment(Segment::open(name, Self::spec(kind), timeout)?, kind == Kind::RLock))
    }

    fn from_segment(seg: Segment, reentrant: bool) -> Self {
        let p = seg.payload();
        let data = p.wrapping_add(data_offset(std::mem::align_of::<T>())).cast::<T>();
        Mutex { seg: std::sync::Arc::new(seg), lock: p.cast::<RawLock>(), data, reentrant }
    }
}

impl<T> Mutex<T> {
    #[inline(always)]
    pub(crate) fn raw(&self) -> &RawLock {
        // SAFETY: `lock` points at the start of the payload of `seg`, which `self` keeps mapped,
        // where a RawLock was initialised before the segment was published; it is made only of
        // atomics, so a shared reference is sound while other processes use it. (The pointer is
        // cached so the hot path reads no header; `Segment::payload_ref` is the checked form.)
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
    /// it.
    #[inline]
    #[doc(alias = "acquire")]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw().acquire(Wait::Until(None), self.reentrant, || MutexGuard::new(self.raw(), self.data()))
    }

    /// Acquires the lock only if it is free right now.
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] when it is held, plus those of [`lock`](Self::lock).
    #[inline]
    pub fn try_lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw().acquire(Wait::No, self.reentrant, || MutexGuard::new(self.raw(), self.data()))
    }

    /// Blocks until the lock is acquired or `timeout` passes (CLOCK_MONOTONIC).
    ///
    /// # Errors
    /// [`LockError::WouldBlock`] on timeout, plus those of [`lock`](Self::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<MutexGuard<'_, T>> {
        self.raw().acquire(Wait::Until(crate::sys::clock::deadline_in(timeout)), self.reentrant, || {
            MutexGuard::new(self.raw(), self.data())
        })
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
        self.raw().acquire_python(block, timeout, self.reentrant)
    }

    /// Python's `release()`: releases a lock taken with [`acquire`](Self::acquire).
    ///
    /// # Errors
    /// [`Error::NotLocked`] when nobody holds it (Python's "released too many times"),
    /// [`Error::NotOwner`] when another thread or process does, [`Error::HeldByGuard`] when this
    /// thread holds it through a guard (drop the guard instead).
    pub fn release(&self) -> Result<()> {
        self.raw().release_python()
    }
}

// SAFETY: the lock serialises every access to the T in shared memory, across threads and processes.
unsafe impl<T: Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Mutex<T> {}
