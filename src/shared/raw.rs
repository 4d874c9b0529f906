//! `RawValue<T>` and `RawArray<T>`: Python's lock-free `RawValue`/`RawArray`, made safe in Rust
//! by making every element an atomic.
//!
//! Python's raw values are plain ctypes memory that several processes may race on. Rust forbids
//! that data race, so here each element is an atomic: `load`, `store`, `swap`,
//! `compare_exchange`, `fetch_add`/`fetch_sub` (wrapping, as ctypes integers do). Floats are stored
//! as their bits and added with a compare-exchange loop.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering,
};

use crate::error::{Error, Result};
use crate::layout::Kind;
use crate::segment::{self, Segment, Spec};

mod sealed {
    pub trait Sealed {}
}

/// Element types of [`RawValue`] and [`RawArray`]: the fixed-size integers and floats, each
/// stored as an atomic of its size.
pub trait AtomicElement: sealed::Sealed + Copy + Send + Sync + 'static {
    #[doc(hidden)]
    type Atomic: Send + Sync;
    #[doc(hidden)]
    fn load(a: &Self::Atomic) -> Self;
    #[doc(hidden)]
    fn store(a: &Self::Atomic, v: Self);
    #[doc(hidden)]
    fn swap(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn compare_exchange(a: &Self::Atomic, current: Self, new: Self) -> std::result::Result<Self, Self>;
    #[doc(hidden)]
    fn fetch_add(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn fetch_sub(a: &Self::Atomic, v: Self) -> Self;
}

macro_rules! int_element {
    ($($t:ty => $a:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicElement for $t {
            type Atomic = $a;
            fn load(a: &$a) -> $t { a.load(Ordering::SeqCst) }
            fn store(a: &$a, v: $t) { a.store(v, Ordering::SeqCst) }
            fn swap(a: &$a, v: $t) -> $t { a.swap(v, Ordering::SeqCst) }
            fn compare_exchange(a: &$a, c: $t, n: $t) -> std::result::Result<$t, $t> {
                a.compare_exchange(c, n, Ordering::SeqCst, Ordering::SeqCst)
            }
            fn fetch_add(a: &$a, v: $t) -> $t { a.fetch_add(v, Ordering::SeqCst) }
            fn fetch_sub(a: &$a, v: $t) -> $t { a.fetch_sub(v, Ordering::SeqCst) }
        }
    )*};
}

int_element!(i8 => AtomicI8, i16 => AtomicI16, i32 => AtomicI32, i64 => AtomicI64,
             u8 => AtomicU8, u16 => AtomicU16, u32 => AtomicU32, u64 => AtomicU64);

macro_rules! float_element {
    ($($t:ty => $a:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicElement for $t {
            type Atomic = $a;
            fn load(a: &$a) -> $t { <$t>::from_bits(a.load(Ordering::SeqCst)) }
            fn store(a: &$a, v: $t) { a.store(v.to_bits(), Ordering::SeqCst) }
            fn swap(a: &$a, v: $t) -> $t { <$t>::from_bits(a.swap(v.to_bits(), Ordering::SeqCst)) }
            /// Compares bit patterns (so `-0.0 != 0.0` and a NaN equals the same NaN).
            fn compare_exchange(a: &$a, c: $t, n: $t) -> std::result::Result<$t, $t> {
                a.compare_exchange(c.to_bits(), n.to_bits(), Ordering::SeqCst, Ordering::SeqCst)
                    .map(<$t>::from_bits)
                    .map_err(<$t>::from_bits)
            }
            fn fetch_add(a: &$a, v: $t) -> $t {
                let r = a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| Some((<$t>::from_bits(b) + v).to_bits()));
                <$t>::from_bits(r.unwrap_or_else(|b| b))
            }
            fn fetch_sub(a: &$a, v: $t) -> $t {
                let r = a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| Some((<$t>::from_bits(b) - v).to_bits()));
                <$t>::from_bits(r.unwrap_or_else(|b| b))
            }
        }
    )*};
}

float_element!(f32 => AtomicU32, f64 => AtomicU64);

/// A lock-free array of atomics in shared memory: Python's `RawArray`.
///
/// # Example
/// ```
/// use shmproc::{Process, RawArray};
///
/// let slots = RawArray::<u64>::new(4)?;
/// let child = Process::new({
///     let slots = slots.clone();
///     move || {
///         slots.fetch_add(2, 10).expect("in range");
///     }
/// });
/// child.start()?;
/// child.join()?;
/// assert_eq!(slots.to_vec(), vec![0, 0, 10, 0]);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct RawArray<T: AtomicElement> {
    seg: Arc<Segment>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: AtomicElement> Clone for RawArray<T> {
    /// Another handle to the same array.
    fn clone(&self) -> Self {
        RawArray { seg: self.seg.clone(), len: self.len, _t: PhantomData }
    }
}

impl<T: AtomicElement + std::fmt::Debug> std::fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawArray").field("values", &self.to_vec()).field("name", &self.seg.name()).finish()
    }
}

impl<T: AtomicElement> RawArray<T> {
    fn spec(kind: Kind, len: usize) -> Result<Spec> {
        let plen = len
            .checked_mul(std::mem::size_of::<T::Atomic>())
            .ok_or_else(|| Error::InvalidArgument(format!("a raw array of {len} elements does not fit in memory")))?;
        Ok(Spec::of::<T::Atomic, T>(kind, len as u64, plen))
    }

    pub(crate) fn build(name: Option<&str>, kind: Kind, len: usize, init: &[T]) -> Result<Self> {
        assert!(init.len() <= len, "more initial values than elements");
        // The values are written before the segment is published (a named one is visible to
        // `open` from then on, and must show them, not zeros).
        let seg = Segment::create(name, Self::spec(kind, len)?, |p| {
            let atoms = p.cast::<T::Atomic>();
            for (i, v) in init.iter().enumerate() {
                // SAFETY: the payload holds `len >= init.len()` elements' room, zero-filled (an
                // atomic zero is all-zero bits for every element type, so a valid atomic),
                // aligned for `T::Atomic` (the spec's alignment), and ours alone until published.
                let a = unsafe { &*atoms.wrapping_add(i) };
                T::store(a, *v);
            }
            Ok(())
        })?;
        Ok(RawArray { seg: Arc::new(seg), len, _t: PhantomData })
    }

    pub(crate) fn attach(name: &str, kind: Kind) -> Result<Self> {
        let mut spec = Self::spec(kind, 0)?;
        spec.payload_len = usize::MAX;
        let seg = Segment::open(name, spec, segment::DEFAULT_OPEN_TIMEOUT)?;
        let len = usize::try_from(seg.param()).unwrap_or(usize::MAX);
        let expected = len.saturating_mul(std::mem::size_of::<T::Atomic>());
        if seg.payload_len() != expected {
            return Err(Error::SizeMismatch { name: name.to_owned(), expected, found: seg.payload_len() });
        }
        Ok(RawArray { seg: Arc::new(seg), len, _t: PhantomData })
    }

    /// An anonymous array of `len` zeros.
    ///
    /// # Errors
    /// [`Error::NoSpace`] if shared memory cannot be reserved.
    pub fn new(len: usize) -> Result<Self> {
        Self::build(None, Kind::RawArray, len, &[])
    }

    /// An anonymous array holding `values`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_slice(values: &[T]) -> Result<Self> {
        Self::build(None, Kind::RawArray, values.len(), values)
    }

    /// A named array of `len` zeros.
    ///
    /// # Errors
    /// As [`Mutex::create`](crate::Mutex::create).
    pub fn create(name: &str, len: usize) -> Result<Self> {
        Self::build(Some(name), Kind::RawArray, len, &[])
    }

    /// Attaches to a named raw array of `T`.
    ///
    /// # Errors
    /// As [`Mutex::open`](crate::Mutex::open).
    pub fn open(name: &str) -> Result<Self> {
        Self::attach(name, Kind::RawArray)
    }

    fn atomic(&self, index: usize) -> &T::Atomic {
        debug_assert!(index < self.len);
        let p = self.seg.payload().cast::<T::Atomic>().wrapping_add(index);
        // SAFETY: `index < len` (checked by every caller), so `p` is inside the payload, aligned
        // for the atomic (Spec::of took its alignment), and initialised (zero bits are a valid
        // atomic of every element type). Atomics may be shared across threads and processes.
        unsafe { &*p }
    }

    fn at(&self, index: usize) -> Result<&T::Atomic> {
        if index >= self.len {
            return Err(Error::IndexOutOfRange { index, len: self.len });
        }
        Ok(self.atomic(index))
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads element `index`.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`].
    pub fn load(&self, index: usize) -> Result<T> {
        Ok(T::load(self.at(index)?))
    }

    /// Writes element `index`.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`].
    pub fn store(&self, index: usize, value: T) -> Result<()> {
        T::store(self.at(index)?, value);
        Ok(())
    }

    /// Replaces element `index`, returning the old value.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`].
    pub fn swap(&self, index: usize, value: T) -> Result<T> {
        Ok(T::swap(self.at(index)?, value))
    }

    /// Adds to element `index` (wrapping for integers), returning the old value.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`].
    pub fn fetch_add(&self, index: usize, value: T) -> Result<T> {
        Ok(T::fetch_add(self.at(index)?, value))
    }

    /// Subtracts from element `index` (wrapping for integers), returning the old value.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`].
    pub fn fetch_sub(&self, index: usize, value: T) -> Result<T> {
        Ok(T::fetch_sub(self.at(index)?, value))
    }

    /// Sets element `index` to `new` if it holds `current`; `Ok(Ok(old))` on success,
    /// `Ok(Err(actual))` otherwise.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`].
    pub fn compare_exchange(&self, index: usize, current: T, new: T) -> Result<std::result::Result<T, T>> {
        Ok(T::compare_exchange(self.at(index)?, current, new))
    }

    /// A snapshot of every element (each read atomically, not all at one instant).
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len).map(|i| T::load(self.atomic(i))).collect()
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

/// One lock-free atomic in shared memory: Python's `RawValue`.
///
/// # Example
/// ```
/// use shmproc::{Process, RawValue};
///
/// let ticks = RawValue::new(0u64)?;
/// let child = Process::new({
///     let ticks = ticks.clone();
///     move || {
///         for _ in 0..1000 {
///             ticks.fetch_add(1);
///         }
///     }
/// });
/// child.start()?;
/// for _ in 0..1000 {
///     ticks.fetch_add(1);
/// }
/// child.join()?;
/// assert_eq!(ticks.load(), 2000);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct RawValue<T: AtomicElement> {
    inner: RawArray<T>,
}

impl<T: AtomicElement> Clone for RawValue<T> {
    /// Another handle to the same value.
    fn clone(&self) -> Self {
        RawValue { inner: self.inner.clone() }
    }
}

impl<T: AtomicElement + std::fmt::Debug> std::fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawValue").field("value", &self.load()).field("name", &self.inner.name()).finish()
    }
}

impl<T: AtomicElement> RawValue<T> {
    /// An anonymous atomic holding `value`.
    ///
    /// # Errors
    /// [`Error::NoSpace`] if shared memory cannot be reserved.
    pub fn new(value: T) -> Result<Self> {
        Ok(RawValue { inner: RawArray::build(None, Kind::RawValue, 1, &[value])? })
    }

    /// A named atomic holding `value`.
    ///
    /// # Errors
    /// As [`Mutex::create`](crate::Mutex::create).
    pub fn create(name: &str, value: T) -> Result<Self> {
        Ok(RawValue { inner: RawArray::build(Some(name), Kind::RawValue, 1, &[value])? })
    }

    /// Attaches to a named raw value of `T`.
    ///
    /// # Errors
    /// As [`Mutex::open`](crate::Mutex::open).
    pub fn open(name: &str) -> Result<Self> {
        let inner = RawArray::attach(name, Kind::RawValue)?;
        if inner.len() != 1 {
            return Err(Error::SizeMismatch { name: name.to_owned(), expected: 1, found: inner.len() });
        }
        Ok(RawValue { inner })
    }

    /// Reads it.
    #[doc(alias = "value")]
    pub fn load(&self) -> T {
        T::load(self.inner.atomic(0))
    }

    /// Writes it.
    pub fn store(&self, value: T) {
        T::store(self.inner.atomic(0), value);
    }

    /// Replaces it, returning the old value.
    pub fn swap(&self, value: T) -> T {
        T::swap(self.inner.atomic(0), value)
    }

    /// Adds (wrapping for integers), returning the old value.
    pub fn fetch_add(&self, value: T) -> T {
        T::fetch_add(self.inner.atomic(0), value)
    }

    /// Subtracts (wrapping for integers), returning the old value.
    pub fn fetch_sub(&self, value: T) -> T {
        T::fetch_sub(self.inner.atomic(0), value)
    }

    /// Sets it to `new` if it holds `current`: `Ok(old)` on success, `Err(actual)` otherwise.
    ///
    /// # Errors
    /// `Err(actual)` when it did not hold `current`.
    pub fn compare_exchange(&self, current: T, new: T) -> std::result::Result<T, T> {
        T::compare_exchange(self.inner.atomic(0), current, new)
    }

    /// The name, for a named value.
    pub fn name(&self) -> Option<&str> {
        self.inner.name()
    }

    /// Removes the name; attached handles keep working.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it was already unlinked.
    pub fn unlink(&self) -> Result<()> {
        self.inner.unlink()
    }
}
