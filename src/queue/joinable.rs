//! `JoinableQueue<T>`: a [`Queue`] that also counts unfinished tasks (Python's
//! `multiprocessing.JoinableQueue`).

use std::marker::PhantomData;
use std::ops::Deref;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::queue::{Core, DEFAULT_CAPACITY, Queue};
use super::shim::Ordering;
use crate::error::{Error, Result, TryPutError};
use crate::sys::clock::Deadline;

/// Element tag of `JoinableQueue<T>` segments.
pub(crate) struct JoinableQueueOf<T>(PhantomData<T>);

/// A [`Queue`] whose consumers mark each item done, so that producers can wait until every item
/// put has been processed: Python's `multiprocessing.JoinableQueue`.
///
/// Every successful put adds one unfinished task; [`task_done`](Self::task_done) removes one;
/// [`join`](Self::join) waits until none is left. It derefs to [`Queue`] for everything else
/// (`get`, `qsize`, `close`, bytes...). Note: the bytes puts (`put_bytes`...) of the inner queue
/// count no task.
///
/// # Example
/// ```
/// let q = shmproc::JoinableQueue::<u32>::new()?;
/// q.put(1)?;
/// let v = q.get()?;
/// q.task_done()?;
/// q.join()?;
/// assert!(q.task_done().is_err()); // more task_done() than puts
/// # let _ = v;
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct JoinableQueue<T> {
    q: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    /// Another handle to the same queue.
    fn clone(&self) -> Self {
        JoinableQueue { q: self.q.clone() }
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("name", &self.q.name())
            .field("qsize", &self.q.qsize())
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.q
    }
}

impl<T> JoinableQueue<T> {
    /// An anonymous queue of [`DEFAULT_CAPACITY`] bytes with no item limit.
    ///
    /// # Errors
    /// [`Error::NoSpace`], [`Error::Os`].
    pub fn new() -> Result<Self> {
        Self::with_capacity(DEFAULT_CAPACITY, 0)
    }

    /// An anonymous queue of `capacity` bytes and at most `maxsize` items (0: no limit).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_capacity(capacity: usize, maxsize: usize) -> Result<Self> {
        Ok(JoinableQueue { q: Queue::from_core(Core::create::<JoinableQueueOf<T>>(None, capacity, maxsize)?) })
    }

    /// A named queue, attachable with [`open`](Self::open).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::InvalidName`], [`Error::NoSpace`], ...
    pub fn create(name: &str, capacity: usize, maxsize: usize) -> Result<Self> {
        Ok(JoinableQueue { q: Queue::from_core(Core::create::<JoinableQueueOf<T>>(Some(name), capacity, maxsize)?) })
    }

    /// Attaches to the named queue created by [`create`](Self::create) for the same `T`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::WrongKind`], [`Error::WrongType`], ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(JoinableQueue { q: Queue::from_core(Core::open::<JoinableQueueOf<T>>(name)?) })
    }

    fn unfinished(&self) -> u64 {
        self.q.core.header().unfinished.load(Ordering::Acquire)
    }

    fn add_task(&self) {
        self.q.core.header().unfinished.fetch_add(1, Ordering::AcqRel);
    }

    /// Marks one item taken with `get` as processed; wakes every `join` when none is left.
    ///
    /// # Errors
    /// [`Error::TaskDoneTooManyTimes`] when called more times than items were put (Python's
    /// `ValueError: task_done() called too many times`).
    pub fn task_done(&self) -> Result<()> {
        let h = self.q.core.header();
        let mut cur = h.unfinished.load(Ordering::Acquire);
        loop {
            if cur == 0 {
                return Err(Error::TaskDoneTooManyTimes);
            }
            match h.unfinished.compare_exchange_weak(cur, cur - 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur == 1 {
            h.all_done.notify_all();
        }
        Ok(())
    }

    fn join_until(&self, deadline: Deadline) -> bool {
        let h = self.q.core.header();
        h.all_done.wait_until(deadline, || (h.unfinished.load(Ordering::Acquire) == 0).then_some(())).is_some()
    }

    /// Blocks until every item put has been marked done. Returns at once when none is pending.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for future failure modes.
    pub fn join(&self) -> Result<()> {
        self.join_until(None);
        Ok(())
    }

    /// Whether every item put has been marked done, without waiting.
    pub fn try_join(&self) -> bool {
        self.unfinished() == 0
    }

    /// Waits at most `timeout` until every item put has been marked done; returns whether it did.
    ///
    /// # Errors
    /// None today.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        Ok(self.join_until(crate::sys::clock::deadline_in(timeout)))
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    fn undo_task<E>(&self, e: E) -> E {
        let _ = self.task_done();
        e
    }

    /// Puts `value` and counts one more unfinished task.
    ///
    /// # Errors
    /// As [`Queue::put`].
    pub fn put(&self, value: T) -> Result<()> {
        self.add_task();
        self.q.put(value).map_err(|e| self.undo_task(e))
    }

    /// [`put`](Self::put) if there is room now; gives the value back on failure.
    ///
    /// # Errors
    /// As [`Queue::try_put`].
    #[doc(alias = "put_nowait")]
    pub fn try_put(&self, value: T) -> Result<(), TryPutError<T>> {
        self.add_task();
        self.q.try_put(value).map_err(|e| self.undo_task(e))
    }

    /// [`put`](Self::put), waiting at most `timeout` for room; gives the value back on failure.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), TryPutError<T>> {
        self.add_task();
        self.q.put_timeout(value, timeout).map_err(|e| self.undo_task(e))
    }

    /// Puts every value in order, counting one unfinished task per value put; returns how many
    /// were put. (Shadows [`Queue::put_many`], which counts no task.)
    ///
    /// # Errors
    /// The first error of [`put`](Self::put); the values before it were put and counted.
    pub fn put_many(&self, values: impl IntoIterator<Item = T>) -> Result<usize> {
        let mut n = 0;
        for v in values {
            self.put(v)?;
            n += 1;
        }
        Ok(n)
    }
}
