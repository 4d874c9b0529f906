//! Everything another process sees as bytes: the segment header, the `ShmSafe` contract, and the
//! static layout assertions that pin them.
//!
//! A segment is laid out as
//!
//! ```text
//! 0    SegmentHeader (128 bytes, every field an atomic)
//! 128  padding up to the payload's alignment (at least a cache line)
//! P    payload: the primitive's own #[repr(C)] struct, then its data
//! ```
//!
//! Shared structs never hold pointers: one process's address means nothing in another. Shared
//! bytes are found by offsets from the segment base (the header's `payload_offset`, a ring's
//! position modulo its cell count), computed per process.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use static_assertions::{const_assert, const_assert_eq};

/// `b"SHMPROC1"` as a little-endian integer: the first eight bytes of every shmproc segment.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMPROC1");

/// Bumped whenever any shared struct changes shape or meaning; an attacher with another version
/// refuses. (3: queue cell stamps carry a state nibble and may hold a message inline.)
pub(crate) const LAYOUT_VERSION: u32 = 3;

/// The cache line size we pad shared hot words to.
pub(crate) const CACHE_LINE: usize = 64;

/// `SegmentHeader::state` before the creator has initialised the payload.
pub(crate) const STATE_INIT: u32 = 0;
/// `SegmentHeader::state` once the payload is initialised: attachers may use it.
pub(crate) const STATE_READY: u32 = 1;

/// What a segment holds. Stored in the header so `Value::open` cannot attach to a Queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
#[non_exhaustive]
pub enum Kind {
    /// `SharedMemory`: raw bytes.
    SharedMemory = 1,
    /// `Value<T>` (with its lock).
    Value = 2,
    /// `Array<T>` (with its lock).
    Array = 3,
    /// `RawValue<T>`.
    RawValue = 4,
    /// `RawArray<T>`.
    RawArray = 5,
    /// `Mutex<T>` / `Lock`.
    Mutex = 6,
    /// `RLock` / `ReentrantMutex<T>`.
    RLock = 7,
    /// `Semaphore` / `BoundedSemaphore`.
    Semaphore = 8,
    /// `Event`.
    Event = 9,
    /// `Condition`.
    Condition = 10,
    /// `Barrier`.
    Barrier = 11,
    /// `Queue<T>` / `SimpleQueue<T>` / `JoinableQueue<T>`.
    Queue = 12,
    /// `Pipe` connections.
    Pipe = 13,
}

impl Kind {
    /// The kind stored as `raw`, if it names one.
    pub(crate) fn from_raw(raw: u32) -> Option<Kind> {
        use Kind::*;
        [
            SharedMemory,
            Value,
            Array,
            RawValue,
            RawArray,
            Mutex,
            RLock,
            Semaphore,
            Event,
            Condition,
            Barrier,
            Queue,
            Pipe,
        ]
        .into_iter()
        .find(|k| *k as u32 == raw)
    }

    /// A human name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::SharedMemory => "SharedMemory",
            Kind::Value => "Value",
            Kind::Array => "Array",
            Kind::RawValue => "RawValue",
            Kind::RawArray => "RawArray",
            Kind::Mutex => "Mutex",
            Kind::RLock => "RLock",
            Kind::Semaphore => "Semaphore",
            Kind::Event => "Event",
            Kind::Condition => "Condition",
            Kind::Barrier => "Barrier",
            Kind::Queue => "Queue",
            Kind::Pipe => "Pipe",
        }
    }
}

/// The first 128 bytes of every segment.
///
/// Every field is an atomic: an attacher may read the header while the creator is still writing
/// it, and must see either the old or the new value of each field, never a torn one. The creator
/// writes every field, initialises the payload, then stores [`STATE_READY`] with `Release`; an
/// attacher loads `state` with `Acquire` before it trusts anything else.
#[repr(C)]
pub(crate) struct SegmentHeader {
    /// [`MAGIC`]; zero until the creator has written the header.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`] of the creator.
    pub layout_version: AtomicU32,
    /// [`Kind`] as u32.
    pub kind: AtomicU32,
    /// [`type_hash`] of the payload's element type.
    pub type_hash: AtomicU64,
    /// Length of the whole mapping in bytes (a page multiple).
    pub total_len: AtomicU64,
    /// Where the payload starts, from the segment base.
    pub payload_offset: AtomicU64,
    /// Length of the payload in bytes.
    pub payload_len: AtomicU64,
    /// A kind-specific parameter: array length, ring capacity, ...
    pub param: AtomicU64,
    /// [`STATE_INIT`] or [`STATE_READY`].
    pub state: AtomicU32,
    /// Pid of the creating process (informational).
    pub creator_pid: AtomicU32,
    /// Room for later fields without moving the payload.
    pub reserved: [AtomicU64; 8],
}

const_assert_eq!(std::mem::size_of::<SegmentHeader>(), 128);
const_assert_eq!(std::mem::align_of::<SegmentHeader>(), 8);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, magic), 0);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, layout_version), 8);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, kind), 12);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, type_hash), 16);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, total_len), 24);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, payload_offset), 32);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, payload_len), 40);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, param), 48);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, state), 56);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, creator_pid), 60);
const_assert_eq!(std::mem::offset_of!(SegmentHeader, reserved), 64);

/// Size of [`SegmentHeader`].
pub(crate) const HEADER_LEN: usize = std::mem::size_of::<SegmentHeader>();
const_assert!(HEADER_LEN <= CACHE_LINE * 2);

impl SegmentHeader {
    /// Whether the creator has finished initialising the segment.
    pub(crate) fn is_ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == STATE_READY
    }
}

/// Types whose bytes may live in shared memory and be read by another process.
///
/// [`Segment::payload_ref`](crate::segment::Segment::payload_ref) hands out `&T` over a payload
/// only for such types.
///
/// # Safety
/// An implementor is `#[repr(C)]` (or a primitive), holds no pointers or references, has its
/// layout pinned by static assertions, all-zero bytes are a valid value of it (payloads start
/// zero-filled), every bit pattern another process can leave in it is handled, and all of its
/// state is in atomics or `UnsafeCell`s (so a shared reference to it may coexist with writes by
/// other processes).
pub(crate) unsafe trait ShmSafe: Sized + Send + Sync {}

// SAFETY: all fields are atomics of fixed size; layout asserted above.
unsafe impl ShmSafe for SegmentHeader {}

/// A stable 64-bit fingerprint of `T`: FNV-1a over its type name, size and alignment.
///
/// Two processes built from the same source agree on it; `open` of a segment created for another
/// type fails with a typed error instead of reinterpreting bytes.
pub(crate) fn type_hash<T>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(std::any::type_name::<T>().as_bytes());
    eat(&(std::mem::size_of::<T>() as u64).to_le_bytes());
    eat(&(std::mem::align_of::<T>() as u64).to_le_bytes());
    h
}

/// `n` rounded up to a multiple of `align` (a power of two).
pub(crate) const fn align_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// Where the payload of a segment starts when it needs alignment `align`.
pub(crate) const fn payload_offset(align: usize) -> usize {
    let a = if align > CACHE_LINE { align } else { CACHE_LINE };
    align_up(HEADER_LEN, a)
}
