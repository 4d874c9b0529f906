//! `SharedMemory`: Python's `multiprocessing.shared_memory.SharedMemory`, raw bytes by name.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};
use crate::layout::Kind;
use crate::segment::{self, Segment, Spec};

/// A block of raw shared bytes: Python's `SharedMemory(name, create, size)`.
///
/// The bytes have no lock: coordinate writers with a [`Mutex`](crate::Mutex), an `Event` or a
/// queue. Safe access is through atomics ([`bytes`](Self::bytes), [`read_at`](Self::read_at),
/// [`write_at`](Self::write_at)); [`as_ptr`](Self::as_ptr) gives the raw pointer for code that
/// brings its own synchronisation.
///
/// # Example
/// ```
/// use shmproc::SharedMemory;
///
/// let name = format!("doc-shm-{}", std::process::id());
/// let a = SharedMemory::create(&name, 16)?;
/// a.write_at(0, b"hello")?;
/// let b = SharedMemory::open(&name)?; // from any process of this user
/// let mut buf = [0u8; 5];
/// b.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// a.unlink()?;
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    seg: Arc<Segment>,
    len: usize,
}

impl std::fmt::Debug for SharedMemory {
    /// Python's repr: `SharedMemory('name', size=100)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedMemory({:?}, size={})", self.seg.name().unwrap_or("<anonymous>"), self.len)
    }
}

impl SharedMemory {
    fn spec(len: usize) -> Spec {
        Spec::of::<u64, u8>(Kind::SharedMemory, len as u64, len)
    }

    fn build(name: Option<&str>, len: usize) -> Result<Self> {
        if len == 0 {
            return Err(Error::InvalidArgument("'size' must be a positive number different from zero".to_owned()));
        }
        let seg = Segment::create(name, Self::spec(len), |_| Ok(()))?;
        Ok(SharedMemory { seg: Arc::new(seg), len })
    }

    /// An anonymous block of `len` zero bytes, inherited by children forked after this call.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `len == 0`, [`Error::NoSpace`].
    pub fn new(len: usize) -> Result<Self> {
        Self::build(None, len)
    }

    /// Creates the named block of `len` zero bytes (Python's `SharedMemory(name, create=True,
    /// size=len)`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `len == 0`, [`Error::AlreadyExists`],
    /// [`Error::InvalidName`], [`Error::NoSpace`].
    pub fn create(name: &str, len: usize) -> Result<Self> {
        Self::build(Some(name), len)
    }

    /// Attaches to the named block; its size comes from the segment.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::WrongKind`] when the name holds another shmproc object.
    pub fn open(name: &str) -> Result<Self> {
        let mut spec = Self::spec(0);
        spec.payload_len = usize::MAX;
        let seg = Segment::open(name, spec, segment::DEFAULT_OPEN_TIMEOUT)?;
        let len = seg.payload_len();
        if seg.param() != len as u64 {
            return Err(Error::SizeMismatch { name: name.to_owned(), expected: seg.param() as usize, found: len });
        }
        Ok(SharedMemory { seg: Arc::new(seg), len })
    }

    /// The size in bytes, exactly as requested (Python's `size`).
    #[doc(alias = "size")]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a block has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The name, for a named block.
    pub fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// The bytes, as atomics: safe to read and write while other processes do.
    #[doc(alias = "buf")]
    pub fn bytes(&self) -> &[AtomicU8] {
        let p = self.seg.payload().cast::<AtomicU8>();
        // SAFETY: the payload is `len` initialised bytes inside the mapping, which lives as long
        // as `self`; AtomicU8 has the layout of u8 and makes concurrent access from other
        // processes sound.
        unsafe { std::slice::from_raw_parts(p, self.len) }
    }

    /// The first byte, for code that brings its own synchronisation. Valid for `len()` bytes as
    /// long as this handle (or a clone) lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.seg.payload()
    }

    fn range(&self, offset: usize, n: usize) -> Result<std::ops::Range<usize>> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(offset..end),
            _ => Err(Error::IndexOutOfRange { index: offset.saturating_add(n), len: self.len }),
        }
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] when the range passes the end.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let r = self.range(offset, buf.len())?;
        for (dst, src) in buf.iter_mut().zip(&self.bytes()[r]) {
            *dst = src.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `data` into the block starting at `offset`.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] when the range passes the end.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        let r = self.range(offset, data.len())?;
        for (dst, src) in self.bytes()[r].iter().zip(data) {
            dst.store(*src, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Removes the name (Python's `unlink()`): call it once, from one process. Mappings stay
    /// valid until dropped.
    ///
    /// # Errors
    /// [`Error::NotFound`] on a second unlink (as Python's `FileNotFoundError`).
    pub fn unlink(&self) -> Result<()> {
        self.seg.unlink()
    }
}
