//! glibc's robust, process-shared `pthread_mutex_t`: the lock word under every shmproc Mutex and
//! RLock. Robustness is the kernel's robust-futex list, which glibc owns; using glibc's mutex is
//! the supported way to learn that a holder died (DESIGN.md §3).

use std::mem::MaybeUninit;

use nix::errno::Errno;
use nix::libc;

use super::clock::Deadline;

unsafe extern "C" {
    // glibc ≥ 2.30. Not (yet) declared by the libc crate.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clockid: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// What a lock attempt produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockStatus {
    /// Acquired normally.
    Acquired,
    /// Acquired, but the previous owner died holding it (EOWNERDEAD). The caller must call
    /// [`make_consistent`] before unlocking or the mutex becomes unrecoverable.
    OwnerDied,
    /// Not acquired: held by someone else (`trylock`) or the deadline passed.
    Busy,
    /// Not acquired: the calling thread already holds this non-recursive mutex (EDEADLK).
    WouldDeadlock,
    /// Not acquired: the mutex is permanently unusable (ENOTRECOVERABLE).
    NotRecoverable,
    /// Not acquired: the recursion counter is full (EAGAIN).
    TooManyRecursions,
}

/// A pthread return code not yet decoded into a [`LockStatus`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawStatus(libc::c_int);

impl RawStatus {
    /// Acquired normally.
    #[inline(always)]
    pub(crate) fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// The decoded status.
    pub(crate) fn status(self) -> LockStatus {
        status(self.0)
    }
}

fn status(rc: libc::c_int) -> LockStatus {
    match rc {
        0 => LockStatus::Acquired,
        libc::EOWNERDEAD => LockStatus::OwnerDied,
        libc::EBUSY | libc::ETIMEDOUT => LockStatus::Busy,
        libc::EDEADLK => LockStatus::WouldDeadlock,
        libc::EAGAIN => LockStatus::TooManyRecursions,
        // ENOTRECOVERABLE, EINVAL (corrupt memory) and anything else: unusable.
        _ => LockStatus::NotRecoverable,
    }
}

/// A glibc `pthread_mutex_t` living in shared memory, robust and process-shared.
///
/// Invariant: a `&RobustMutex` only exists over memory that [`RobustMutex::init`] initialised
/// (segments publish their payload only after it ran), so the safe methods below may call into
/// glibc. glibc and the kernel update the bytes atomically; Rust never reads or writes them
/// except through glibc, hence the `UnsafeCell`.
#[repr(transparent)]
pub(crate) struct RobustMutex(std::cell::UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: a process-shared pthread mutex is designed to be used from any thread of any process.
unsafe impl Sync for RobustMutex {}
// SAFETY: as above; it holds no thread-local state.
unsafe impl Send for RobustMutex {}

static_assertions::const_assert_eq!(std::mem::size_of::<RobustMutex>(), 40);
static_assertions::const_assert_eq!(std::mem::align_of::<RobustMutex>(), 8);

impl RobustMutex {
    /// All-zero bytes: NOT yet a robust mutex. Only for storage that [`init`](Self::init)
    /// initialises before any lock call (the lazily initialised `lock_api` adapter).
    pub(crate) const fn zeroed() -> RobustMutex {
        // SAFETY: pthread_mutex_t is a C union of integers and arrays of integers; all-zero bits
        // are a valid value of it (glibc's own PTHREAD_MUTEX_INITIALIZER is all zeros).
        RobustMutex(std::cell::UnsafeCell::new(unsafe { std::mem::zeroed() }))
    }

    /// Initialises a robust, process-shared mutex in place: error-checking (a relock by the owner
    /// is EDEADLK, an unlock by a non-owner EPERM) or recursive.
    ///
    /// # Safety
    /// `m` must be valid for writes of a `RobustMutex`, suitably aligned, and no other thread or
    /// process may use it until this returns.
    pub(crate) unsafe fn init(m: *mut RobustMutex, recursive: bool) -> Result<(), Errno> {
        let m = m.cast::<libc::pthread_mutex_t>();
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is a local, writable pthread_mutexattr_t.
        Errno::result(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
        let kind = if recursive { libc::PTHREAD_MUTEX_RECURSIVE } else { libc::PTHREAD_MUTEX_ERRORCHECK };
        let r = (|| {
            // SAFETY: `attr` was initialised above.
            Errno::result(unsafe { libc::pthread_mutexattr_settype(attr.as_mut_ptr(), kind) })?;
            // SAFETY: `attr` was initialised above.
            Errno::result(unsafe {
                libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED)
            })?;
            // SAFETY: `attr` was initialised above.
            Errno::result(unsafe { libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST) })?;
            // SAFETY: the caller guarantees `m` is writable and unused; `attr` is initialised.
            Errno::result(unsafe { libc::pthread_mutex_init(m, attr.as_ptr()) })?;
            Ok(())
        })();
        // SAFETY: `attr` was initialised above and is destroyed once.
        unsafe { libc::pthread_mutexattr_destroy(attr.as_mut_ptr()) };
        r
    }

    /// Blocks until the mutex is acquired.
    #[inline]
    pub(crate) fn lock(&self) -> LockStatus {
        // SAFETY: the type invariant: the mutex was initialised and stays mapped while `self` lives.
        status(unsafe { libc::pthread_mutex_lock(self.0.get()) })
    }

    /// Acquires the mutex if it is free right now.
    #[inline]
    pub(crate) fn try_lock(&self) -> LockStatus {
        self.try_lock_raw().status()
    }

    /// `try_lock` with the status left undecoded: the uncontended fast path tests `is_ok()`
    /// only and decodes nothing.
    #[inline(always)]
    pub(crate) fn try_lock_raw(&self) -> RawStatus {
        // SAFETY: the type invariant.
        RawStatus(unsafe { libc::pthread_mutex_trylock(self.0.get()) })
    }

    /// Blocks until the mutex is acquired or the CLOCK_MONOTONIC deadline passes.
    pub(crate) fn lock_until(&self, deadline: Deadline) -> LockStatus {
        let Some(deadline) = deadline else {
            return self.lock();
        };
        let ts = deadline.to_timespec();
        // SAFETY: the type invariant; `ts` outlives the call.
        status(unsafe { pthread_mutex_clocklock(self.0.get(), libc::CLOCK_MONOTONIC, &ts) })
    }

    /// Marks a mutex acquired with [`LockStatus::OwnerDied`] as consistent again. The calling
    /// thread must hold it.
    pub(crate) fn make_consistent(&self) -> Result<(), Errno> {
        // SAFETY: the type invariant; glibc checks ownership and returns EINVAL otherwise.
        Errno::result(unsafe { libc::pthread_mutex_consistent(self.0.get()) }).map(drop)
    }

    /// Releases the mutex (one level, for a recursive one). EPERM when the caller is not the
    /// owner: robust mutexes check ownership.
    #[inline]
    pub(crate) fn unlock(&self) -> Result<(), Errno> {
        let rc = self.unlock_raw();
        if rc == 0 { Ok(()) } else { Err(Errno::from_raw(rc)) }
    }

    /// `unlock` returning glibc's code as is (0 on success), for guards that know they hold it.
    #[inline(always)]
    pub(crate) fn unlock_raw(&self) -> i32 {
        // SAFETY: the type invariant; glibc checks ownership for robust mutexes.
        unsafe { libc::pthread_mutex_unlock(self.0.get()) }
    }

    /// The futex word glibc keeps first in every mutex: owner TID plus the FUTEX_WAITERS and
    /// FUTEX_OWNER_DIED bits (the kernel's robust-futex ABI). Read only as a hint.
    #[inline]
    pub(crate) fn word(&self) -> u32 {
        // The robust-futex ABI fixes `__lock` as the first 32-bit field of the mutex; the kernel
        // and other processes write it concurrently, so it is read atomically.
        let word = self.0.get().cast::<std::sync::atomic::AtomicU32>();
        // SAFETY: the mutex is valid and 8-byte aligned; an AtomicU32 has the layout of the u32
        // at offset 0 and is only read.
        unsafe { (*word).load(std::sync::atomic::Ordering::Relaxed) }
    }
}

/// Owner-TID mask of the robust futex word.
pub(crate) const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Set by the kernel in the futex word when its owner died.
pub(crate) const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
