//! `Semaphore` and `BoundedSemaphore`: counters that any process may acquire and release.
//!
//! The shared state is a [`SemCore`](super::semcore::SemCore): a futex counter, a waiter count and
//! the maximum. Uncontended acquire and release are one CAS each; a release makes a FUTEX_WAKE
//! only when somebody waits.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::{Kind, ShmSafe};
use crate::segment::{self, Segment, Spec};
use crate::sync::semcore::SemCore;
use crate::sys::clock::{Deadline, deadline_after};

/// The largest count a semaphore holds (POSIX's `SEM_VALUE_MAX`, as Python).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

// SAFETY: repr(C) of four AtomicU32, no pointers; size, alignment and offsets asserted in its core module; every bit
// pattern is a valid count.
unsafe impl ShmSafe for SemCore {}

/// Marks the segment type of a plain [`Semaphore`].
struct Unbounded;
/// Marks the segment type of a [`BoundedSemaphore`] (so `open` cannot mix the two).
struct Bounded;

/// The shared handle under both semaphore types.
struct Sem<M> {
    seg: Arc<Segment>,
    _m: PhantomData<M>,
}

impl<M> Clone for Sem<M> {
    fn clone(&self) -> Self {
        Sem { seg: self.seg.clone(), _m: PhantomData }
    }
}

impl<M> Sem<M> {
    fn spec() -> Spec {
        Spec::of::<SemCore, M>(Kind::Semaphore, 0, std::mem::size_of::<SemCore>())
    }

    fn create(name: Option<&str>, value: u32, max: u32) -> Result<Self> {
        if value > SEM_VALUE_MAX {
            return Err(Error::InvalidArgument(format!("semaphore value {value} exceeds SEM_VALUE_MAX")));
        }
        let seg = Segment::create(name, Self::spec(), |p| {
            // SAFETY: the payload is ours alone until `create` publishes it, aligned and sized
            // for a SemCore (Spec::of).
            unsafe { p.cast::<SemCore>().write(SemCore::new(value, max)) };
            Ok(())
        })?;
        Ok(Sem { seg: Arc::new(seg), _m: PhantomData })
    }

    fn open(name: &str) -> Result<Self> {
        let seg = Segment::open(name, Self::spec(), segment::DEFAULT_OPEN_TIMEOUT)?;
        Ok(Sem { seg: Arc::new(seg), _m: PhantomData })
    }

    fn core(&self) -> &SemCore {
        self.seg.payload_ref::<SemCore>()
    }

    fn acquire_until(&self, deadline: Deadline) -> bool {
        self.core().acquire_until(deadline)
    }

    fn python_acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        if !block {
            return self.core().try_acquire();
        }
        self.acquire_until(deadline_after(timeout))
    }

    fn release(&self) -> Result<()> {
        self.core().release().map_err(|_| Error::ReleasedTooManyTimes)
    }
}

macro_rules! semaphore_common {
    ($ty:ident) => {
        impl $ty {
            /// Takes one unit, blocking while the count is zero.
            #[inline]
            pub fn acquire(&self) {
                self.inner.acquire_until(None);
            }

            /// Takes one unit if the count is above zero right now; returns whether it did.
            #[inline]
            pub fn try_acquire(&self) -> bool {
                self.inner.core().try_acquire()
            }

            /// Takes one unit, waiting up to `timeout` (CLOCK_MONOTONIC); returns whether it did.
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                self.inner.acquire_until(crate::sys::clock::deadline_in(timeout))
            }

            /// Python's `acquire(block=True, timeout=None) -> bool`: `block == false` ignores the
            /// timeout, `None` waits for ever, a zero timeout returns at once.
            #[doc(alias = "acquire")]
            pub fn acquire_python(&self, block: bool, timeout: Option<Duration>) -> bool {
                self.inner.python_acquire(block, timeout)
            }

            /// The current count (Python's `get_value()`; a snapshot).
            #[doc(alias = "get_value")]
            pub fn value(&self) -> u32 {
                self.inner.core().value()
            }

            /// The name, for a named semaphore.
            pub fn name(&self) -> Option<&str> {
                self.inner.seg.name()
            }

            /// Removes the name; attached handles keep working. A no-op when anonymous.
            ///
            /// # Errors
            /// [`Error::NotFound`] if it was already unlinked.
            pub fn unlink(&self) -> Result<()> {
                self.inner.seg.unlink()
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &self.name())
                    .field("value", &self.value())
                    .field("waiters", &self.inner.core().waiters())
                    .finish()
            }
        }
    };
}

/// A counting semaphore in shared memory: Python's `multiprocessing.Semaphore`.
///
/// Not owned: any process may release a unit another one acquired, and a release may lift the
/// count above its initial value (up to [`SEM_VALUE_MAX`]). Anonymous semaphores
/// ([`new`](Self::new)) are inherited by forked children; named ones are attached with
/// [`open`](Self::open).
///
/// # Example
/// ```
/// let sem = shmproc::Semaphore::new(2)?;
/// sem.acquire();
/// assert!(sem.try_acquire());
/// assert!(!sem.try_acquire()); // count is 0
/// sem.release()?;
/// assert_eq!(sem.value(), 1);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Sem<Unbounded>,
}

semaphore_common!(Semaphore);

impl Semaphore {
    /// An anonymous semaphore holding `value`, shared with every child forked after this call.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `value` exceeds [`SEM_VALUE_MAX`]; [`Error::NoSpace`] or
    /// [`Error::Os`] if the shared memory cannot be made.
    pub fn new(value: u32) -> Result<Self> {
        Ok(Semaphore { inner: Sem::create(None, value, SEM_VALUE_MAX)? })
    }

    /// A named semaphore holding `value`, attachable with [`open`](Self::open).
    ///
    /// # Errors
    /// As [`new`](Self::new), plus [`Error::AlreadyExists`], [`Error::InvalidName`],
    /// [`Error::PermissionDenied`].
    pub fn create(name: &str, value: u32) -> Result<Self> {
        Ok(Semaphore { inner: Sem::create(Some(name), value, SEM_VALUE_MAX)? })
    }

    /// Attaches to the named semaphore made by [`create`](Self::create).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongKind`] / [`Error::WrongType`] if the name holds
    /// something else (a `BoundedSemaphore` included); [`Error::NotReady`].
    pub fn open(name: &str) -> Result<Self> {
        Ok(Semaphore { inner: Sem::open(name)? })
    }

    /// Returns one unit, waking one waiter if any. No syscall when nobody waits.
    ///
    /// # Errors
    /// [`Error::ReleasedTooManyTimes`] if the count is already [`SEM_VALUE_MAX`].
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.inner.release()
    }
}

/// A semaphore whose count may never exceed its initial value: Python's
/// `multiprocessing.BoundedSemaphore`.
///
/// # Example
/// ```
/// let sem = shmproc::BoundedSemaphore::new(1)?;
/// sem.acquire();
/// sem.release()?;
/// assert!(matches!(sem.release(), Err(shmproc::Error::ReleasedTooManyTimes)));
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    inner: Sem<Bounded>,
}

semaphore_common!(BoundedSemaphore);

impl BoundedSemaphore {
    /// An anonymous bounded semaphore holding `value`, its maximum.
    ///
    /// # Errors
    /// As [`Semaphore::new`].
    pub fn new(value: u32) -> Result<Self> {
        Ok(BoundedSemaphore { inner: Sem::create(None, value, value)? })
    }

    /// A named bounded semaphore holding `value`, its maximum.
    ///
    /// # Errors
    /// As [`Semaphore::create`].
    pub fn create(name: &str, value: u32) -> Result<Self> {
        Ok(BoundedSemaphore { inner: Sem::create(Some(name), value, value)? })
    }

    /// Attaches to the named bounded semaphore made by [`create`](Self::create).
    ///
    /// # Errors
    /// As [`Semaphore::open`] (a plain `Semaphore` of that name is [`Error::WrongType`]).
    pub fn open(name: &str) -> Result<Self> {
        Ok(BoundedSemaphore { inner: Sem::open(name)? })
    }

    /// The initial value, which the count may never exceed.
    pub fn max_value(&self) -> u32 {
        self.inner.core().max()
    }

    /// Returns one unit, waking one waiter if any. No syscall when nobody waits.
    ///
    /// # Errors
    /// [`Error::ReleasedTooManyTimes`] if the count is already at its initial value (Python's
    /// `ValueError: semaphore or lock released too many times`); the count is unchanged.
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.inner.release()
    }
}
