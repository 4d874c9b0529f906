//! `Barrier`: `parties` processes wait until all of them arrived, generation after generation.
//!
//! The shared state is a [`BarrierCore`](super::barriercore::BarrierCore): one 64-bit state word
//! changed only by CAS (generation, arrivals, broken flag, outcome history) plus an eventcount.
//! The action is a local closure: each handle may carry one, and the last party to arrive runs
//! its own before the others are released.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::{Kind, ShmSafe};
use crate::segment::{self, Segment, Spec};
use crate::sync::barriercore::{Arrival, BarrierCore};
use crate::sys::clock::{Deadline, deadline_after};

// SAFETY: repr(C) of atomics only (an AtomicU64, an EventCount of two AtomicU32, two
// AtomicU32), no pointers; every bit pattern decodes to some state; layout asserted in its core module.
unsafe impl ShmSafe for BarrierCore {}

type Action = Arc<dyn Fn() + Send + Sync>;

/// A barrier for a fixed number of processes: Python's `multiprocessing.Barrier`.
///
/// Each [`wait`](Self::wait) returns a distinct index in `0..parties`; the last party to arrive
/// gets `parties - 1` and runs the handle's action (if any) before the others are released. A
/// timeout, [`abort`](Self::abort) or a panicking action breaks the barrier: every waiter and
/// every later caller gets [`Error::BrokenBarrier`] until [`reset`](Self::reset).
///
/// # Example
/// ```
/// let b = shmproc::Barrier::new(1)?;
/// assert_eq!(b.wait()?, 0); // a barrier of one never waits
/// b.abort();
/// assert!(matches!(b.wait(), Err(shmproc::Error::BrokenBarrier)));
/// b.reset();
/// assert_eq!(b.wait()?, 0);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    seg: Arc<Segment>,
    action: Option<Action>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("name", &self.name())
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Barrier {
    fn spec() -> Spec {
        Spec::of::<BarrierCore, BarrierCore>(Kind::Barrier, 0, std::mem::size_of::<BarrierCore>())
    }

    fn create_in(name: Option<&str>, parties: u32) -> Result<Self> {
        if parties == 0 || parties > i32::MAX as u32 {
            return Err(Error::InvalidArgument(format!("barrier parties must be in 1..=2^31-1, got {parties}")));
        }
        let seg = Segment::create(name, Self::spec(), |p| {
            // SAFETY: the payload is ours alone until `create` publishes it, aligned and sized
            // for a BarrierCore (Spec::of).
            unsafe { p.cast::<BarrierCore>().write(BarrierCore::new(parties)) };
            Ok(())
        })?;
        Ok(Barrier { seg: Arc::new(seg), action: None, timeout: None })
    }

    /// An anonymous barrier for `parties` processes, shared with every child forked after this
    /// call; no action, no default timeout.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `parties` is 0 or above `i32::MAX`; [`Error::NoSpace`] or
    /// [`Error::Os`] if the shared memory cannot be made.
    pub fn new(parties: u32) -> Result<Self> {
        Self::create_in(None, parties)
    }

    /// A named barrier for `parties` processes, attachable with [`open`](Self::open).
    ///
    /// # Errors
    /// As [`new`](Self::new), plus [`Error::AlreadyExists`], [`Error::InvalidName`].
    pub fn create(name: &str, parties: u32) -> Result<Self> {
        Self::create_in(Some(name), parties)
    }

    /// Attaches to the named barrier made by [`create`](Self::create) (no action, no default
    /// timeout: add them with [`with_action`](Self::with_action) / [`with_timeout`](Self::with_timeout)).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::WrongKind`], [`Error::NotReady`].
    pub fn open(name: &str) -> Result<Self> {
        let seg = Segment::open(name, Self::spec(), segment::DEFAULT_OPEN_TIMEOUT)?;
        Ok(Barrier { seg: Arc::new(seg), action: None, timeout: None })
    }

    /// This handle with `action`, run by the last party to arrive (if it waits through this
    /// handle) once per generation, before the others are released. Python's `action`.
    #[must_use]
    pub fn with_action(mut self, action: impl Fn() + Send + Sync + 'static) -> Self {
        self.action = Some(Arc::new(action));
        self
    }

    /// This handle with a default timeout for [`wait`](Self::wait) (`None`: wait for ever).
    /// Python's `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    fn core(&self) -> &BarrierCore {
        self.seg.payload_ref::<BarrierCore>()
    }

    fn wait_until(&self, deadline: Deadline) -> Result<u32> {
        let core = self.core();
        match core.arrive(deadline).map_err(|_| Error::BrokenBarrier)? {
            Arrival::Waiter { generation, index } => {
                core.await_release(generation, deadline).map_err(|_| Error::BrokenBarrier)?;
                Ok(index)
            }
            Arrival::Last { generation } => {
                if let Some(action) = &self.action
                    && let Err(panic) = catch_unwind(AssertUnwindSafe(|| action()))
                {
                    core.break_gen(generation);
                    resume_unwind(panic);
                }
                core.release(generation).map_err(|_| Error::BrokenBarrier)?;
                Ok(core.parties() - 1)
            }
        }
    }

    /// Waits until every party arrived (or the handle's default timeout passes); returns this
    /// party's index in `0..parties` (the last to arrive gets `parties - 1`).
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`] if the barrier is or becomes broken (aborted, reset, a party's
    /// timeout, a panicking action) while waiting; a timeout breaks it for everyone.
    ///
    /// # Panics
    /// If this party runs the action and it panics: the barrier is broken first, then the panic
    /// continues (Python raises the action's exception in that party).
    pub fn wait(&self) -> Result<u32> {
        self.wait_until(deadline_after(self.timeout))
    }

    /// As [`wait`](Self::wait) with `timeout` instead of the default.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        self.wait_until(crate::sys::clock::deadline_in(timeout))
    }

    /// Arrives without waiting (Python's `wait(0)`): succeeds only for the last party; any other
    /// breaks the barrier.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    ///
    /// # Panics
    /// As [`wait`](Self::wait).
    pub fn try_wait(&self) -> Result<u32> {
        self.wait_timeout(Duration::ZERO)
    }

    /// Breaks the barrier: current and future waiters get [`Error::BrokenBarrier`] until
    /// [`reset`](Self::reset).
    pub fn abort(&self) {
        self.core().abort();
    }

    /// Returns the barrier to its empty, unbroken state; parties waiting now get
    /// [`Error::BrokenBarrier`].
    pub fn reset(&self) {
        self.core().reset();
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.core().parties()
    }

    /// How many parties wait in the current generation (a snapshot; 0 when broken).
    pub fn n_waiting(&self) -> u32 {
        self.core().n_waiting()
    }

    /// Whether the barrier is broken.
    #[doc(alias = "broken")]
    pub fn is_broken(&self) -> bool {
        self.core().is_broken()
    }

    /// The name, for a named barrier.
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Removes the name; attached handles keep working. A no-op when anonymous.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it was already unlinked.
    pub fn unlink(&self) -> Result<()> {
        self.seg.unlink()
    }
}
