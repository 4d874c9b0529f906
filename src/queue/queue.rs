//! `Queue<T>`: Python's `multiprocessing.Queue`, a bounded MPMC ring buffer in one segment.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use static_assertions::const_assert_eq;

use super::eventcount::EventCount;
use super::ring::Line;
use super::shim::AtomicU64;
use super::{QUEUE_SLOTS, RawQueue, RingRef, cells_for_capacity, region_len, with_encoded};
use crate::error::{Error, Result, TryPutError};
use crate::layout::{CACHE_LINE, Kind, ShmSafe};
use crate::segment::{self, Segment, Spec};
use crate::sys::clock::{Deadline, deadline_in};

/// The capacity of [`Queue::new`]: 1 MiB of messages.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// The part of a queue segment before its ring: `JoinableQueue`'s unfinished-task count (unused
/// by the other queues, but every queue segment has it so their layouts agree).
#[repr(C)]
pub(crate) struct QueueHeader {
    /// Items put and not yet marked done (JoinableQueue).
    pub(crate) unfinished: AtomicU64,
    /// `join()` sleeps here; notified when `unfinished` reaches 0.
    pub(crate) all_done: EventCount,
}

const_assert_eq!(std::mem::size_of::<Line<QueueHeader>>(), CACHE_LINE);
const_assert_eq!(std::mem::size_of::<QueueHeader>(), 16);
const_assert_eq!(std::mem::offset_of!(QueueHeader, unfinished), 0);
const_assert_eq!(std::mem::offset_of!(QueueHeader, all_done), 8);

// SAFETY: repr(C), atomics only, layout asserted above.
unsafe impl ShmSafe for Line<QueueHeader> {}

/// Where the ring starts in a queue segment's payload.
const RING_OFFSET: usize = CACHE_LINE;

/// The shared core of `Queue`, `SimpleQueue` and `JoinableQueue`: a segment and its ring.
#[derive(Clone, Debug)]
pub(crate) struct Core {
    pub(crate) raw: RawQueue,
}

impl Core {
    fn spec<Tag>(cells: u64) -> Spec {
        let len = if cells == 0 { usize::MAX } else { RING_OFFSET + region_len(cells, QUEUE_SLOTS) };
        Spec::of::<Line<QueueHeader>, Tag>(Kind::Queue, cells, len)
    }

    /// Creates a queue segment (anonymous when `name` is `None`) for element tag `Tag`.
    pub(crate) fn create<Tag>(name: Option<&str>, capacity: usize, maxsize: usize) -> Result<Core> {
        let cells = cells_for_capacity(capacity)?;
        let seg = Segment::create(name, Self::spec::<Tag>(cells), |p| {
            // SAFETY: the payload is ours alone until published, cache-line aligned, zero-filled,
            // and large enough (the spec's length counts header + region).
            unsafe {
                p.cast::<Line<QueueHeader>>()
                    .write(Line(QueueHeader { unfinished: AtomicU64::new(0), all_done: EventCount::new() }))
            };
            // SAFETY: as above: the region follows the header, within the payload.
            unsafe { RingRef::init(p.wrapping_add(RING_OFFSET), cells, QUEUE_SLOTS, maxsize as u64) };
            Ok(())
        })?;
        Ok(Self::from_segment(Arc::new(seg), cells))
    }

    /// Attaches to the named queue segment for element tag `Tag`.
    pub(crate) fn open<Tag>(name: &str) -> Result<Core> {
        let seg = Segment::open(name, Self::spec::<Tag>(0), segment::DEFAULT_OPEN_TIMEOUT)?;
        let cells = seg.param();
        let bad =
            || Error::CorruptHeader { name: name.to_owned(), reason: "queue ring size does not match its segment" };
        if !cells.is_power_of_two() || !(super::MIN_CELLS..=(1 << 36)).contains(&cells) {
            return Err(bad());
        }
        if seg.payload_len() != RING_OFFSET + region_len(cells, QUEUE_SLOTS) {
            return Err(bad());
        }
        Ok(Self::from_segment(Arc::new(seg), cells))
    }

    fn from_segment(seg: Arc<Segment>, cells: u64) -> Core {
        Core { raw: RawQueue::new(seg, RING_OFFSET, cells, QUEUE_SLOTS, 0) }
    }

    pub(crate) fn header(&self) -> &QueueHeader {
        // SAFETY: the payload starts with a QueueHeader initialised before publication; atomics
        // only, kept mapped by `raw`'s Arc.
        unsafe { &(*self.raw.segment().payload().cast::<Line<QueueHeader>>()).0 }
    }
}

/// A multi-producer multi-consumer queue of `T` in shared memory: Python's
/// `multiprocessing.Queue`.
///
/// A bounded ring buffer in one segment, holding up to `capacity` bytes of messages and, when
/// `maxsize > 0`, up to `maxsize` messages (with several producers racing, briefly up to one more
/// per producer). Messages are `T` encoded with postcard, or raw bytes (`put_bytes`/`get_bytes`).
/// FIFO per producer. Lock-free on the data path; no syscall unless someone sleeps.
///
/// A producer or consumer killed at any instruction does not wedge it: the others go on, and at
/// most the message that process was putting (or had just taken) is lost.
///
/// Anonymous queues ([`new`](Self::new)) are inherited by forked children; named ones
/// ([`create`](Self::create) / [`open`](Self::open)) are attached by name, type-checked.
///
/// # Example
/// ```
/// use shmproc::{Process, Queue};
///
/// let q = Queue::<String>::new()?;
/// let child = Process::new({
///     let q = q.clone();
///     // The closure returns (), so it cannot `?`: a failed put ends the child with exit code 1.
///     move || q.put("hello".to_string()).expect("put")
/// });
/// child.start()?;
/// assert_eq!(q.get()?, "hello");
/// child.join()?;
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Queue<T> {
    pub(crate) core: Core,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    /// Another handle to the same queue.
    fn clone(&self) -> Self {
        Queue { core: self.core.clone(), _t: PhantomData }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("qsize", &self.qsize())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Element tag of `Queue<T>` segments (distinct from `JoinableQueue<T>` and `SimpleQueue<T>`).
pub(crate) struct QueueOf<T>(PhantomData<T>);

impl<T> Queue<T> {
    pub(crate) fn from_core(core: Core) -> Self {
        Queue { core, _t: PhantomData }
    }

    /// An anonymous queue of [`DEFAULT_CAPACITY`] bytes with no item limit, shared with every
    /// child forked after this call.
    ///
    /// # Errors
    /// [`Error::NoSpace`] if the shared memory cannot be reserved, [`Error::Os`] otherwise.
    pub fn new() -> Result<Self> {
        Self::with_capacity(DEFAULT_CAPACITY, 0)
    }

    /// An anonymous queue holding up to `capacity` bytes of messages (rounded up to a power of two
    /// of 64-byte cells; a message takes `ceil(len / 64)` cells, one if it is at most 8 bytes,
    /// which travel inline in the cell's metadata) and, when `maxsize > 0`, up to `maxsize`
    /// messages.
    ///
    /// # Errors
    /// As [`new`](Self::new); [`Error::InvalidArgument`] for an absurd capacity.
    pub fn with_capacity(capacity: usize, maxsize: usize) -> Result<Self> {
        Ok(Self::from_core(Core::create::<QueueOf<T>>(None, capacity, maxsize)?))
    }

    /// A named queue (see [`with_capacity`](Self::with_capacity)), attachable with
    /// [`open`](Self::open) from any process of this user.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::InvalidName`], [`Error::NoSpace`], ...
    pub fn create(name: &str, capacity: usize, maxsize: usize) -> Result<Self> {
        Ok(Self::from_core(Core::create::<QueueOf<T>>(Some(name), capacity, maxsize)?))
    }

    /// Attaches to the named queue created by [`create`](Self::create) for the same `T`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::WrongKind`], [`Error::WrongType`], [`Error::NotReady`], ...
    pub fn open(name: &str) -> Result<Self> {
        Ok(Self::from_core(Core::open::<QueueOf<T>>(name)?))
    }

    /// The name, for a named queue.
    pub fn name(&self) -> Option<&str> {
        self.core.raw.segment().name()
    }

    /// Removes the name; attached handles keep working. A no-op for anonymous queues.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it was already unlinked.
    pub fn unlink(&self) -> Result<()> {
        self.core.raw.segment().unlink()
    }

    /// The largest message the queue accepts, in bytes (its whole ring).
    pub fn max_message_len(&self) -> usize {
        self.core.raw.max_message()
    }

    /// The approximate number of messages in the queue (Python's `qsize()`).
    pub fn qsize(&self) -> usize {
        self.core.raw.qsize()
    }

    /// Whether the queue looks empty (approximate, as in Python).
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.core.raw.is_empty()
    }

    /// Whether the queue looks full (approximate, as in Python).
    #[doc(alias = "full")]
    pub fn is_full(&self) -> bool {
        self.core.raw.is_full()
    }

    /// Closes the queue for every process: later puts fail with [`Error::Closed`], gets return
    /// what is left, then [`Error::Closed`]. Wakes every blocked caller. Idempotent.
    pub fn close(&self) {
        self.core.raw.close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.core.raw.is_closed()
    }

    // ---- bytes ------------------------------------------------------------------------------

    /// Puts one message of raw bytes, waiting for room.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] when it can never fit, [`Error::Closed`].
    pub fn put_bytes(&self, buf: &[u8]) -> Result<()> {
        self.core.raw.put_bytes(buf, true, None)
    }

    /// Puts one message of raw bytes if there is room now.
    ///
    /// # Errors
    /// [`Error::Full`], plus those of [`put_bytes`](Self::put_bytes).
    pub fn try_put_bytes(&self, buf: &[u8]) -> Result<()> {
        self.core.raw.put_bytes(buf, false, None)
    }

    /// Puts one message of raw bytes, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Full`] after the timeout, plus those of [`put_bytes`](Self::put_bytes).
    pub fn put_bytes_timeout(&self, buf: &[u8], timeout: Duration) -> Result<()> {
        self.core.raw.put_bytes(buf, true, deadline_in(timeout))
    }

    /// Takes the next message as raw bytes, waiting for one.
    ///
    /// # Errors
    /// [`Error::Closed`] once the queue is closed and drained.
    pub fn get_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.core.raw.claim(true, None)?.to_vec())
    }

    /// Takes the next message as raw bytes if one is there now.
    ///
    /// # Errors
    /// [`Error::Empty`], [`Error::Closed`].
    pub fn try_get_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.core.raw.claim(false, None)?.to_vec())
    }

    /// Takes the next message as raw bytes, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Empty`] after the timeout, [`Error::Closed`].
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        Ok(self.core.raw.claim(true, deadline_in(timeout))?.to_vec())
    }

    /// Takes the next message into `buf` (replacing its contents, reusing its allocation) and
    /// returns its length, waiting for one.
    ///
    /// # Errors
    /// [`Error::Closed`] once the queue is closed and drained.
    pub fn get_bytes_into(&self, buf: &mut Vec<u8>) -> Result<usize> {
        self.core.raw.get_into(buf, true, None)
    }

    /// [`get_bytes_into`](Self::get_bytes_into) if a message is there now.
    ///
    /// # Errors
    /// [`Error::Empty`], [`Error::Closed`].
    pub fn try_get_bytes_into(&self, buf: &mut Vec<u8>) -> Result<usize> {
        self.core.raw.get_into(buf, false, None)
    }

    /// [`get_bytes_into`](Self::get_bytes_into), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Empty`] after the timeout, [`Error::Closed`].
    pub fn get_bytes_into_timeout(&self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        self.core.raw.get_into(buf, true, deadline_in(timeout))
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    fn put_inner(&self, value: &T, block: bool, deadline: Deadline) -> Result<()> {
        with_encoded(value, |bytes| self.core.raw.put_bytes(bytes, block, deadline))
    }

    fn get_inner(&self, block: bool, deadline: Deadline) -> Result<T> {
        self.core.raw.get_value(block, deadline)
    }

    /// Puts `value`, waiting for room.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::MessageTooLarge`], [`Error::Codec`] (the value cannot be
    /// encoded).
    pub fn put(&self, value: T) -> Result<()> {
        self.put_inner(&value, true, None)
    }

    /// Puts `value` if there is room now (Python's `put_nowait`); gives it back on failure.
    ///
    /// # Errors
    /// [`Error::Full`] inside the [`TryPutError`], plus those of [`put`](Self::put).
    #[doc(alias = "put_nowait")]
    pub fn try_put(&self, value: T) -> Result<(), TryPutError<T>> {
        self.put_inner(&value, false, None).map_err(|e| TryPutError::new(e, value))
    }

    /// Puts `value`, waiting at most `timeout` for room; gives it back on failure.
    ///
    /// # Errors
    /// [`Error::Full`] after the timeout, plus those of [`put`](Self::put).
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), TryPutError<T>> {
        self.put_inner(&value, true, deadline_in(timeout)).map_err(|e| TryPutError::new(e, value))
    }

    /// Takes the next value, waiting for one.
    ///
    /// # Errors
    /// [`Error::Closed`] once the queue is closed and drained; [`Error::Codec`] if the message is
    /// not a `T`.
    pub fn get(&self) -> Result<T> {
        self.get_inner(true, None)
    }

    /// Takes the next value if one is there now (Python's `get_nowait`).
    ///
    /// # Errors
    /// [`Error::Empty`], plus those of [`get`](Self::get).
    #[doc(alias = "get_nowait")]
    pub fn try_get(&self) -> Result<T> {
        self.get_inner(false, None)
    }

    /// Takes the next value, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Empty`] after the timeout (never sooner), plus those of [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_inner(true, deadline_in(timeout))
    }

    /// Puts every value in order, waiting for room as needed; returns how many were put.
    ///
    /// # Errors
    /// The first error of [`put`](Self::put); the values before it were put.
    pub fn put_many(&self, values: impl IntoIterator<Item = T>) -> Result<usize> {
        let mut n = 0;
        for v in values {
            self.put_inner(&v, true, None)?;
            n += 1;
        }
        Ok(n)
    }

    /// Takes up to `max` values: waits for the first, then takes what is there without waiting.
    ///
    /// # Errors
    /// Those of [`get`](Self::get) for the first value.
    pub fn get_many(&self, max: usize) -> Result<Vec<T>> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        out.push(self.get()?);
        while out.len() < max {
            match self.try_get() {
                Ok(v) => out.push(v),
                Err(Error::Empty | Error::Closed) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
