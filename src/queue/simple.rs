//! `SimpleQueue<T>`: Python's `multiprocessing.SimpleQueue`, a queue with no item limit.

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::queue::{Core, DEFAULT_CAPACITY, Queue};
use crate::error::Result;

/// Element tag of `SimpleQueue<T>` segments.
pub(crate) struct SimpleQueueOf<T>(PhantomData<T>);

/// A plain queue of `T` in shared memory: Python's `multiprocessing.SimpleQueue`.
///
/// The same lock-free ring as [`Queue`], with Python's smaller interface: `put`, `get`, `empty`,
/// `close` (plus `try_get`/`get_timeout`, because every blocking call here has them).
///
/// # Example
/// ```
/// let q = shmproc::SimpleQueue::<u32>::new()?;
/// q.put(7)?;
/// assert_eq!(q.get()?, 7);
/// assert!(q.is_empty());
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct SimpleQueue<T> {
    q: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    /// Another handle to the same queue.
    fn clone(&self) -> Self {
        SimpleQueue { q: self.q.clone() }
    }
}

impl<T> std::fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimpleQueue").field("name", &self.q.name()).field("closed", &self.q.is_closed()).finish()
    }
}

impl<T> SimpleQueue<T> {
    /// An anonymous queue of [`DEFAULT_CAPACITY`] bytes, shared with children forked later.
    ///
    /// # Errors
    /// [`Error::NoSpace`](crate::Error::NoSpace), [`Error::Os`](crate::Error::Os).
    pub fn new() -> Result<Self> {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// An anonymous queue holding up to `capacity` bytes of messages.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_capacity(capacity: usize) -> Result<Self> {
        Ok(SimpleQueue { q: Queue::from_core(Core::create::<SimpleQueueOf<T>>(None, capacity, 0)?) })
    }

    /// A named queue holding up to `capacity` bytes of messages.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::InvalidName`](crate::Error::InvalidName), ...
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        Ok(SimpleQueue { q: Queue::from_core(Core::create::<SimpleQueueOf<T>>(Some(name), capacity, 0)?) })
    }

    /// Attaches to the named queue created by [`create`](Self::create) for the same `T`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), [`Error::WrongType`](crate::Error::WrongType), ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(SimpleQueue { q: Queue::from_core(Core::open::<SimpleQueueOf<T>>(name)?) })
    }

    /// The name, for a named queue.
    pub fn name(&self) -> Option<&str> {
        self.q.name()
    }

    /// Removes the name. A no-op for anonymous queues.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if it was already unlinked.
    pub fn unlink(&self) -> Result<()> {
        self.q.unlink()
    }

    /// Whether the queue looks empty.
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Closes the queue: puts fail, gets drain it, then fail with
    /// [`Error::Closed`](crate::Error::Closed). Idempotent.
    pub fn close(&self) {
        self.q.close();
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// Puts `value`, waiting for room.
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed), [`Error::MessageTooLarge`](crate::Error::MessageTooLarge),
    /// [`Error::Codec`](crate::Error::Codec).
    pub fn put(&self, value: T) -> Result<()> {
        self.q.put(value)
    }

    /// Puts `value` if there is room now; gives it back on failure.
    ///
    /// # Errors
    /// [`Error::Full`](crate::Error::Full) inside the [`TryPutError`](crate::TryPutError), plus
    /// those of [`put`](Self::put).
    pub fn try_put(&self, value: T) -> Result<(), crate::TryPutError<T>> {
        self.q.try_put(value)
    }

    /// Puts `value`, waiting at most `timeout` for room; gives it back on failure.
    ///
    /// # Errors
    /// [`Error::Full`](crate::Error::Full) after the timeout, plus those of [`put`](Self::put).
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), crate::TryPutError<T>> {
        self.q.put_timeout(value, timeout)
    }

    /// Takes the next value, waiting for one.
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed) once closed and drained.
    pub fn get(&self) -> Result<T> {
        self.q.get()
    }

    /// Takes the next value if one is there now.
    ///
    /// # Errors
    /// [`Error::Empty`](crate::Error::Empty), plus those of [`get`](Self::get).
    pub fn try_get(&self) -> Result<T> {
        self.q.try_get()
    }

    /// Takes the next value, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Empty`](crate::Error::Empty) after the timeout, plus those of [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.q.get_timeout(timeout)
    }
}
