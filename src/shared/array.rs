//! `Array<T>`: Python's `multiprocessing.Array(typecode, size_or_initializer)` with its lock.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, LockResult, Result};
use crate::layout::Kind;
use crate::segment::{self, Segment, Spec};
use crate::sync::mutex::{MutexGuard, RawLock, Wait, data_offset};

/// A fixed-length `[T]` in shared memory behind one robust lock: Python's `Array`.
///
/// Element access takes the lock per call; [`lock`](Self::lock) holds it for a whole slice
/// operation.
///
/// # Example
/// ```
/// use shmproc::{Array, Process};
///
/// let squares = Array::<i64>::new(8)?;
/// let child = Process::new({
///     let squares = squares.clone();
///     move || {
///         let mut a = squares.lock().expect("lock");
///         for (i, x) in a.iter_mut().enumerate() {
///             *x = (i * i) as i64;
///         }
///     }
/// });
/// child.start()?;
/// child.join()?;
/// assert_eq!(squares.to_vec()?, vec![0, 1, 4, 9, 16, 25, 36, 49]);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Array<T> {
    seg: Arc<Segment>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T> Clone for Array<T> {
    /// Another handle to the same array.
    fn clone(&self) -> Self {
        Array { seg: self.seg.clone(), len: self.len, _t: PhantomData }
    }
}

impl<T> std::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Array").field("len", &self.len).field("name", &self.seg.name()).finish()
    }
}

// SAFETY: every access to the elements goes through the robust lock, across threads and processes.
unsafe impl<T: Send> Send for Array<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Array<T> {}

impl<T: Pod> Array<T> {
    fn payload_len(len: usize) -> Option<usize> {
        len.checked_mul(std::mem::size_of::<T>())?.checked_add(data_offset(std::mem::align_of::<T>()))
    }

    fn spec(len: usize) -> Result<Spec> {
        let plen = Self::payload_len(len)
            .ok_or_else(|| Error::InvalidArgument(format!("an array of {len} elements does not fit in memory")))?;
        Ok(Spec::of::<RawLock, T>(Kind::Array, len as u64, plen))
    }

    fn build(name: Option<&str>, len: usize, init: Option<&[T]>) -> Result<Self> {
        let seg = Segment::create(name, Self::spec(len)?, |p| {
            // SAFETY: the payload is ours alone until published, aligned for RawLock.
            unsafe { RawLock::init(p.cast::<RawLock>()) };
            if let Some(src) = init {
                let dst = p.wrapping_add(data_offset(std::mem::align_of::<T>())).cast::<T>();
                // SAFETY: `dst` is inside the zero-filled payload, aligned for T, with room for
                // `len == src.len()` elements; nobody else sees it yet.
                unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
            }
            Ok(())
        })?;
        Ok(Array { seg: Arc::new(seg), len, _t: PhantomData })
    }

    /// An anonymous array of `len` zeroed elements (Python's `Array('d', 10)`).
    ///
    /// # Errors
    /// [`Error::NoSpace`] if shared memory cannot be reserved.
    pub fn new(len: usize) -> Result<Self> {
        Self::build(None, len, None)
    }

    /// An anonymous array initialised from `values` (Python's `Array('i', [1, 2, 3])`).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_slice(values: &[T]) -> Result<Self> {
        Self::build(None, values.len(), Some(values))
    }

    /// A named array of `len` zeroed elements.
    ///
    /// # Errors
    /// As [`Mutex::create`](crate::Mutex::create).
    pub fn create(name: &str, len: usize) -> Result<Self> {
        Self::build(Some(name), len, None)
    }

    /// A named array initialised from `values`.
    ///
    /// # Errors
    /// As [`Mutex::create`](crate::Mutex::create).
    pub fn create_from_slice(name: &str, values: &[T]) -> Result<Self> {
        Self::build(Some(name), values.len(), Some(values))
    }

    /// Attaches to a named array of `T` (its length comes from the segment).
    ///
    /// # Errors
    /// As [`Mutex::open`](crate::Mutex::open); [`Error::SizeMismatch`] if the header's length
    /// and the payload disagree.
    pub fn open(name: &str) -> Result<Self> {
        let mut spec = Self::spec(0)?;
        spec.payload_len = usize::MAX;
        let seg = Segment::open(name, spec, segment::DEFAULT_OPEN_TIMEOUT)?;
        let len = usize::try_from(seg.param()).unwrap_or(usize::MAX);
        let expected = Self::payload_len(len).unwrap_or(usize::MAX);
        if seg.payload_len() != expected {
            return Err(Error::SizeMismatch { name: name.to_owned(), expected, found: seg.payload_len() });
        }
        Ok(Array { seg: Arc::new(seg), len, _t: PhantomData })
    }
}

impl<T: Pod> Array<T> {
    fn raw(&self) -> &RawLock {
        self.seg.payload_ref::<RawLock>()
    }

    fn data(&self) -> *mut [T] {
        let p = self.seg.payload().wrapping_add(data_offset(std::mem::align_of::<T>())).cast::<T>();
        std::ptr::slice_from_raw_parts_mut(p, self.len)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Holds the lock; the guard derefs to `[T]`.
    ///
    /// # Errors
    /// As [`Mutex::lock`](crate::Mutex::lock).
    #[doc(alias = "get_lock")]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, [T]>> {
        self.raw().acquire(Wait::Until(None), false, || MutexGuard::new(self.raw(), self.data()))
    }

    /// Takes the lock only if it is free.
    ///
    /// # Errors
    /// As [`Mutex::try_lock`](crate::Mutex::try_lock).
    pub fn try_lock(&self) -> LockResult<MutexGuard<'_, [T]>> {
        self.raw().acquire(Wait::No, false, || MutexGuard::new(self.raw(), self.data()))
    }

    /// Takes the lock, giving up after `timeout`.
    ///
    /// # Errors
    /// As [`Mutex::lock_timeout`](crate::Mutex::lock_timeout).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<MutexGuard<'_, [T]>> {
        let deadline = Some(crate::sys::clock::MonoTime::after(timeout));
        self.raw().acquire(Wait::Until(deadline), false, || MutexGuard::new(self.raw(), self.data()))
    }

    fn check(&self, index: usize) -> Result<()> {
        if index >= self.len {
            return Err(Error::IndexOutOfRange { index, len: self.len });
        }
        Ok(())
    }

    /// Element `index`, read under the lock (Python's `a[i]`).
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] (Python's `IndexError`), [`Error::Poisoned`].
    pub fn get(&self, index: usize) -> Result<T> {
        self.check(index)?;
        Ok(self.lock()?[index])
    }

    /// Sets element `index` under the lock (Python's `a[i] = v`).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        self.check(index)?;
        self.lock()?[index] = value;
        Ok(())
    }

    /// A copy of every element, taken under one lock hold (Python's `a[:]`).
    ///
    /// # Errors
    /// [`Error::Poisoned`].
    pub fn to_vec(&self) -> Result<Vec<T>> {
        Ok(self.lock()?.to_vec())
    }

    /// Overwrites every element from `values` under one lock hold (Python's `a[:] = seq`).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] ("Can only assign sequence of same size"), [`Error::Poisoned`].
    pub fn copy_from_slice(&self, values: &[T]) -> Result<()> {
        if values.len() != self.len {
            return Err(Error::LengthMismatch { expected: self.len, found: values.len() });
        }
        self.lock()?.copy_from_slice(values);
        Ok(())
    }

    /// Whether a holder died or panicked while holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.raw().is_poisoned()
    }

    /// Declares the data consistent again after a poisoning.
    pub fn clear_poison(&self) {
        self.raw().clear_poison();
    }

    /// The name, for a named array.
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Removes the name; attached handles keep working.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it was already unlinked.
    pub fn unlink(&self) -> Result<()> {
        self.seg.unlink()
    }
}
