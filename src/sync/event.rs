//! `Event`: a flag processes can wait on.
//!
//! Shared state: a flag word and an [`EventCount`](super::eventcount::EventCount). `set` stores
//! the flag and notifies the eventcount, which makes a FUTEX_WAKE only when somebody waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use static_assertions::const_assert_eq;

use crate::error::Result;
use crate::layout::{Kind, ShmSafe};
use crate::segment::{self, Segment, Spec};
use crate::sync::eventcount::EventCount;
use crate::sys::clock::{Deadline, deadline_after};

/// The shared bytes of an Event.
#[repr(C)]
struct EventShared {
    /// 1 when set.
    flag: AtomicU32,
    _reserved: AtomicU32,
    ec: EventCount,
}

const_assert_eq!(std::mem::size_of::<EventShared>(), 16);
const_assert_eq!(std::mem::align_of::<EventShared>(), 4);
const_assert_eq!(std::mem::offset_of!(EventShared, flag), 0);
const_assert_eq!(std::mem::offset_of!(EventShared, _reserved), 4);
const_assert_eq!(std::mem::offset_of!(EventShared, ec), 8);

// SAFETY: repr(C) of atomics only, no pointers; layout asserted above.
unsafe impl ShmSafe for EventShared {}

/// A flag that processes can set, clear and wait on: Python's `multiprocessing.Event`.
///
/// # Example
/// ```
/// let ev = shmproc::Event::new()?;
/// assert!(!ev.wait_timeout(std::time::Duration::from_millis(1)));
/// ev.set();
/// ev.wait(); // returns at once
/// assert!(ev.is_set());
/// # Ok::<(), shmproc::Error>(())
/// ```
///
/// Two processes: the child blocks until the parent sets the event.
/// ```
/// use std::time::Duration;
///
/// let go = shmproc::Event::new()?;
/// let child = shmproc::Process::new({
///     let go = go.clone();
///     move || assert!(go.wait_timeout(Duration::from_secs(10)))
/// });
/// child.start()?;
/// go.set();
/// child.join()?;
/// assert_eq!(child.exitcode(), Some(0));
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    seg: Arc<Segment>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event").field("name", &self.name()).field("set", &self.is_set()).finish()
    }
}

impl Event {
    fn spec() -> Spec {
        Spec::of::<EventShared, EventShared>(Kind::Event, 0, std::mem::size_of::<EventShared>())
    }

    fn create_in(name: Option<&str>) -> Result<Self> {
        let seg = Segment::create(name, Self::spec(), |p| {
            // SAFETY: the payload is ours alone until `create` publishes it, aligned and sized
            // for an EventShared (Spec::of).
            unsafe {
                p.cast::<EventShared>().write(EventShared {
                    flag: AtomicU32::new(0),
                    _reserved: AtomicU32::new(0),
                    ec: EventCount::new(),
                })
            };
            Ok(())
        })?;
        Ok(Event { seg: Arc::new(seg) })
    }

    /// An anonymous, unset event, shared with every child forked after this call.
    ///
    /// # Errors
    /// [`Error::NoSpace`](crate::Error::NoSpace) or [`Error::Os`](crate::Error::Os) if the
    /// shared memory cannot be made.
    pub fn new() -> Result<Self> {
        Self::create_in(None)
    }

    /// A named, unset event, attachable with [`open`](Self::open).
    ///
    /// # Errors
    /// As [`new`](Self::new), plus [`Error::AlreadyExists`](crate::Error::AlreadyExists),
    /// [`Error::InvalidName`](crate::Error::InvalidName).
    pub fn create(name: &str) -> Result<Self> {
        Self::create_in(Some(name))
    }

    /// Attaches to the named event made by [`create`](Self::create).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::WrongKind`](crate::Error::WrongKind),
    /// [`Error::NotReady`](crate::Error::NotReady).
    pub fn open(name: &str) -> Result<Self> {
        Ok(Event { seg: Arc::new(Segment::open(name, Self::spec(), segment::DEFAULT_OPEN_TIMEOUT)?) })
    }

    fn shared(&self) -> &EventShared {
        self.seg.payload_ref::<EventShared>()
    }

    /// Whether the flag is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.shared().flag.load(Ordering::SeqCst) != 0
    }

    /// Sets the flag and wakes every waiter. No syscall when nobody waits.
    #[inline]
    pub fn set(&self) {
        let s = self.shared();
        // Already set: nothing to publish, and no read-modify-write of a line waiters read.
        if s.flag.load(Ordering::SeqCst) == 0 && s.flag.swap(1, Ordering::SeqCst) == 0 {
            s.ec.notify_all();
        }
    }

    /// Clears the flag.
    #[inline]
    pub fn clear(&self) {
        self.shared().flag.store(0, Ordering::SeqCst);
    }

    fn wait_until(&self, deadline: Deadline) -> bool {
        let s = self.shared();
        s.ec.wait_until(deadline, || (s.flag.load(Ordering::SeqCst) != 0).then_some(())).is_some()
    }

    /// Blocks until the flag is set.
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Returns the flag without waiting (Python's `wait(0)`).
    pub fn try_wait(&self) -> bool {
        self.is_set()
    }

    /// Blocks until the flag is set or `timeout` passes; returns the flag (Python's
    /// `wait(timeout)`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(crate::sys::clock::deadline_in(timeout))
    }

    /// Python's `wait(timeout=None) -> bool`.
    #[doc(alias = "wait")]
    pub fn wait_python(&self, timeout: Option<Duration>) -> bool {
        self.wait_until(deadline_after(timeout))
    }

    /// The name, for a named event.
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Removes the name; attached handles keep working. A no-op when anonymous.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if it was already unlinked.
    pub fn unlink(&self) -> Result<()> {
        self.seg.unlink()
    }
}
