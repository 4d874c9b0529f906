//! `Value<T>`: Python's `multiprocessing.Value(typecode, value)` with its lock.

use std::time::Duration;

use bytemuck::Pod;

use crate::error::{LockResult, Result};
use crate::layout::Kind;
use crate::segment;
use crate::sync::mutex::{Mutex, MutexGuard};

/// One `T` in shared memory behind a robust lock: Python's `Value(typecode, value)`.
///
/// `get` and `set` each take the lock once; a read-modify-write needs one lock hold, as in
/// Python: `with v.get_lock(): v.value += 1` is `*v.lock()? += 1`.
///
/// # Example
/// ```
/// use shmproc::{Process, Value};
///
/// let hits = Value::new(0u32)?;
/// let workers: Vec<Process> = (0..4)
///     .map(|_| {
///         let hits = hits.clone();
///         Process::new(move || {
///             for _ in 0..100 {
///                 *hits.lock().expect("lock") += 1;
///             }
///         })
///     })
///     .collect();
/// for w in &workers {
///     w.start()?;
/// }
/// for w in &workers {
///     w.join()?;
/// }
/// assert_eq!(hits.get()?, 400);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Value<T> {
    inner: Mutex<T>,
}

impl<T> Clone for Value<T> {
    /// Another handle to the same value.
    fn clone(&self) -> Self {
        Value { inner: self.inner.clone() }
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Value");
        match self.inner.try_lock() {
            Ok(g) => d.field("value", &*g),
            Err(_) => d.field("value", &format_args!("<locked>")),
        };
        d.field("name", &self.inner.name()).finish()
    }
}

impl<T: Pod> Value<T> {
    /// An anonymous shared value, inherited by children forked after this call.
    ///
    /// # Errors
    /// [`Error::NoSpace`](crate::Error::NoSpace) if shared memory cannot be reserved.
    pub fn new(value: T) -> Result<Self> {
        Ok(Value { inner: Mutex::create_kind(None, Kind::Value, value)? })
    }

    /// A named shared value, attachable with [`open`](Self::open).
    ///
    /// # Errors
    /// As [`Mutex::create`].
    pub fn create(name: &str, value: T) -> Result<Self> {
        Ok(Value { inner: Mutex::create_kind(Some(name), Kind::Value, value)? })
    }

    /// Attaches to a named value created for the same `T`.
    ///
    /// # Errors
    /// As [`Mutex::open`]: [`Error::WrongType`](crate::Error::WrongType) when it holds another
    /// type, [`Error::WrongKind`](crate::Error::WrongKind) when the name is not a `Value`.
    pub fn open(name: &str) -> Result<Self> {
        Ok(Value { inner: Mutex::open_kind(name, Kind::Value, segment::DEFAULT_OPEN_TIMEOUT)? })
    }

    /// Reads the value under the lock (Python's `v.value`).
    ///
    /// # Errors
    /// [`Error::Poisoned`](crate::Error::Poisoned) when a holder died or panicked mid-update:
    /// inspect it with [`lock`](Self::lock), then [`clear_poison`](Self::clear_poison).
    #[doc(alias = "value")]
    pub fn get(&self) -> Result<T> {
        Ok(*self.inner.lock()?)
    }

    /// Writes the value under the lock (Python's `v.value = x`).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn set(&self, value: T) -> Result<()> {
        *self.inner.lock()? = value;
        Ok(())
    }

    /// Holds the lock for a read-modify-write: `*v.lock()? += 1` (Python's `get_lock()`).
    ///
    /// # Errors
    /// As [`Mutex::lock`].
    #[doc(alias = "get_lock")]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.inner.lock()
    }

    /// Takes the lock only if it is free.
    ///
    /// # Errors
    /// As [`Mutex::try_lock`].
    pub fn try_lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.inner.try_lock()
    }

    /// Takes the lock, giving up after `timeout`.
    ///
    /// # Errors
    /// As [`Mutex::lock_timeout`].
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<MutexGuard<'_, T>> {
        self.inner.lock_timeout(timeout)
    }

    /// Whether a holder died or panicked while holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Declares the value consistent again after a poisoning.
    pub fn clear_poison(&self) {
        self.inner.clear_poison();
    }

    /// The name, for a named value.
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
