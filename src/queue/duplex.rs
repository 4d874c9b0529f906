//! The shared part of a pipe: two rings (one per direction) and the state of each end, in one
//! segment. `pipe.rs` builds the safe `Connection` API on top of it.
//!
//! ```text
//! 0     EndState of end 0   (cache line: owner identity, closed flag)
//! 64    EndState of end 1
//! 128   ring 0: messages written by end 0, read by end 1
//! ...   ring 1: messages written by end 1, read by end 0
//! ```

use std::sync::Arc;

use static_assertions::const_assert_eq;

use super::shim::{AtomicU32, AtomicU64, Ordering};
use super::{MIN_CELLS, RawQueue, RingRef, cells_for_capacity, owner_alive, owner_id, region_len};
use crate::error::{Error, Result};
use crate::layout::{CACHE_LINE, Kind, ShmSafe};
use crate::segment::{self, Segment, Spec};

/// Registry slots per pipe ring: the threads that may use one end at once.
const PIPE_SLOTS: u64 = 16;

/// One end of a pipe, as every process sees it.
#[repr(C, align(64))]
pub(crate) struct EndState {
    /// Identity of the process that used this end last (`pid | start << 22`).
    owner: AtomicU64,
    /// 1 once this end was closed.
    closed: AtomicU32,
}

const_assert_eq!(std::mem::size_of::<EndState>(), CACHE_LINE);
const_assert_eq!(std::mem::offset_of!(EndState, owner), 0);
const_assert_eq!(std::mem::offset_of!(EndState, closed), 8);

// SAFETY: repr(C), atomics only, layout asserted above.
unsafe impl ShmSafe for EndState {}

const RINGS_OFFSET: usize = 2 * CACHE_LINE;

/// Element tag of pipe segments carrying `T`.
pub(crate) struct PipeOf<T>(std::marker::PhantomData<T>);

/// The shared core of a pipe: its segment and both rings.
#[derive(Clone, Debug)]
pub(crate) struct PipeCore {
    rings: [RawQueue; 2],
}

fn layout(cells: u64, duplex: bool) -> (u64, usize) {
    let c0 = if duplex { cells } else { MIN_CELLS };
    (c0, RINGS_OFFSET + region_len(c0, PIPE_SLOTS))
}

fn param(cells: u64, duplex: bool) -> u64 {
    cells | (u64::from(duplex) << 63)
}

impl PipeCore {
    fn spec<Tag>(cells: u64, duplex: bool) -> Spec {
        let len = if cells == 0 {
            usize::MAX
        } else {
            let (_, ring1) = layout(cells, duplex);
            ring1 + region_len(cells, PIPE_SLOTS)
        };
        Spec::of::<EndState, Tag>(Kind::Pipe, param(cells, duplex), len)
    }

    /// Creates a pipe segment. Ring 1 (end 1 writes) always exists; ring 0 has `capacity` bytes
    /// when `duplex`, a token size otherwise (end 0 is then the read end).
    pub(crate) fn create<Tag>(name: Option<&str>, duplex: bool, capacity: usize) -> Result<PipeCore> {
        let cells = cells_for_capacity(capacity)?;
        let (c0, ring1) = layout(cells, duplex);
        let me = owner_id();
        let seg = Segment::create(name, Self::spec::<Tag>(cells, duplex), |p| {
            for i in 0..2 {
                // SAFETY: the payload is ours alone until published, cache-line aligned and
                // large enough: two EndStates come first.
                unsafe {
                    p.cast::<EndState>()
                        .wrapping_add(i)
                        .write(EndState { owner: AtomicU64::new(me), closed: AtomicU32::new(0) })
                };
            }
            // SAFETY: ring 0's region lies after the end states, inside the payload.
            unsafe { RingRef::init(p.wrapping_add(RINGS_OFFSET), c0, PIPE_SLOTS, 0) };
            // SAFETY: ring 1's region follows ring 0's, inside the payload (the spec counts both).
            unsafe { RingRef::init(p.wrapping_add(ring1), cells, PIPE_SLOTS, 0) };
            Ok(())
        })?;
        Ok(Self::from_segment(Arc::new(seg), cells, duplex))
    }

    /// Attaches to a named pipe segment; returns the core and whether it is duplex.
    pub(crate) fn open<Tag>(name: &str) -> Result<(PipeCore, bool)> {
        let seg = Segment::open(name, Self::spec::<Tag>(0, false), segment::DEFAULT_OPEN_TIMEOUT)?;
        let p = seg.param();
        let duplex = p >> 63 == 1;
        let cells = p & !(1 << 63);
        let bad =
            || Error::CorruptHeader { name: name.to_owned(), reason: "pipe ring size does not match its segment" };
        if !cells.is_power_of_two() || !(MIN_CELLS..=(1 << 36)).contains(&cells) {
            return Err(bad());
        }
        let (_, ring1) = layout(cells, duplex);
        if seg.payload_len() != ring1 + region_len(cells, PIPE_SLOTS) {
            return Err(bad());
        }
        Ok((Self::from_segment(Arc::new(seg), cells, duplex), duplex))
    }

    fn from_segment(seg: Arc<Segment>, cells: u64, duplex: bool) -> PipeCore {
        let (c0, ring1) = layout(cells, duplex);
        let r0 = RawQueue::new(seg.clone(), RINGS_OFFSET, c0, PIPE_SLOTS, 0);
        let r1 = RawQueue::new(seg, ring1, cells, PIPE_SLOTS, 1);
        PipeCore { rings: [r0, r1] }
    }

    /// The ring that end `side` writes to.
    pub(crate) fn ring(&self, side: usize) -> &RawQueue {
        &self.rings[side & 1]
    }

    fn end(&self, side: usize) -> &EndState {
        let seg = self.rings[0].segment();
        // SAFETY: the payload starts with two EndStates initialised before publication; atomics
        // only, and the Arc keeps the mapping alive.
        unsafe { &*seg.payload().cast::<EndState>().wrapping_add(side & 1) }
    }

    /// Records the calling process as the user of end `side` (cheap when it already is).
    #[inline]
    pub(crate) fn touch(&self, side: usize) {
        let me = owner_id();
        let e = self.end(side);
        if e.owner.load(Ordering::Relaxed) != me {
            e.owner.store(me, Ordering::Release);
        }
    }

    /// Closes end `side` for every process and wakes whoever waits on either ring.
    pub(crate) fn close_end(&self, side: usize) {
        self.end(side).closed.store(1, Ordering::SeqCst);
        for r in &self.rings {
            r.wake_readers();
            r.wake_writers();
        }
    }

    /// Whether end `side` was closed.
    pub(crate) fn is_closed(&self, side: usize) -> bool {
        self.end(side).closed.load(Ordering::Acquire) != 0
    }

    /// Whether end `side` is closed or its last user died (reads /proc: not for hot paths).
    pub(crate) fn is_gone(&self, side: usize) -> bool {
        self.is_closed(side) || !owner_alive(self.end(side).owner.load(Ordering::Acquire))
    }

    /// The segment's name, for named pipes.
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        self.rings[0].segment()
    }
}
