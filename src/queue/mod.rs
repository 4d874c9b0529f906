//! Queues in shared memory: the lock-free ring ([`ring`]) and the typed queues on top of it
//! ([`Queue`](queue::Queue), [`SimpleQueue`](simple::SimpleQueue),
//! [`JoinableQueue`](joinable::JoinableQueue)); `pipe.rs` builds on [`RawQueue`] too.
//!
//! A ring region in a segment is laid out as
//!
//! ```text
//! RingHeader          5 cache lines: tail, head, not_empty, not_full, parameters
//! [Slot; slots]       one cache line per participant (owner identity + intents)
//! [CellMeta; cells]   16 bytes per cell: stamp + length (or a message of up to 8 bytes)
//! [u8; cells * 64]    the message bytes (a message is contiguous, wrapping at the end)
//! ```
#![allow(unsafe_code)]

pub(crate) mod duplex;
pub(crate) mod joinable;
#[allow(clippy::module_inception)]
pub(crate) mod queue;
pub(crate) mod ring;
pub(crate) mod shim;
pub(crate) mod simple;

pub(crate) use crate::sync::eventcount;

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};

use static_assertions::const_assert_eq;

use crate::error::{Error, Result};
use crate::layout::{CACHE_LINE, ShmSafe};
use crate::segment::Segment;
use crate::sys::clock::Deadline;
use ring::{CELL, CellMeta, Claimed, Fail, Ring, RingHeader, Slot};

const_assert_eq!(std::mem::size_of::<RingHeader>(), 5 * CACHE_LINE);
const_assert_eq!(std::mem::offset_of!(RingHeader, tail), 0);
const_assert_eq!(std::mem::offset_of!(RingHeader, head), 64);
const_assert_eq!(std::mem::offset_of!(RingHeader, not_empty), 128);
const_assert_eq!(std::mem::offset_of!(RingHeader, not_full), 192);
const_assert_eq!(std::mem::offset_of!(RingHeader, conf), 256);
const_assert_eq!(std::mem::size_of::<Slot>(), CACHE_LINE);
const_assert_eq!(std::mem::offset_of!(Slot, owner), 0);
const_assert_eq!(std::mem::offset_of!(Slot, prod_lo), 8);
const_assert_eq!(std::mem::offset_of!(Slot, prod_hi), 16);
const_assert_eq!(std::mem::offset_of!(Slot, cons_lo), 24);
const_assert_eq!(std::mem::offset_of!(Slot, cons_hi), 32);
const_assert_eq!(std::mem::size_of::<CellMeta>(), 16);
const_assert_eq!(std::mem::offset_of!(CellMeta, stamp), 0);
const_assert_eq!(std::mem::offset_of!(CellMeta, word), 8);
const_assert_eq!(std::mem::size_of::<ring::Pos>(), 16);
const_assert_eq!(std::mem::offset_of!(ring::Pos, pos), 0);
const_assert_eq!(std::mem::offset_of!(ring::Pos, count), 8);
const_assert_eq!(std::mem::size_of::<ring::Conf>(), 32);
const_assert_eq!(std::mem::offset_of!(ring::Conf, cells), 0);
const_assert_eq!(std::mem::offset_of!(ring::Conf, slots), 8);
const_assert_eq!(std::mem::offset_of!(ring::Conf, maxsize), 16);
const_assert_eq!(std::mem::offset_of!(ring::Conf, closed), 24);
const_assert_eq!(std::mem::offset_of!(ring::Conf, _reserved), 28);

// SAFETY: repr(C), atomics only, no pointers; layout asserted above.
unsafe impl ShmSafe for RingHeader {}
// SAFETY: as above.
unsafe impl ShmSafe for Slot {}
// SAFETY: as above.
unsafe impl ShmSafe for CellMeta {}

/// The smallest ring, in cells.
pub(crate) const MIN_CELLS: u64 = 4;

/// Registry slots of a queue ring (threads that may use it at once, over all processes).
pub(crate) const QUEUE_SLOTS: u64 = 128;

/// The number of cells for a capacity of `bytes` (a power of two, at least [`MIN_CELLS`]).
pub(crate) fn cells_for_capacity(bytes: usize) -> Result<u64> {
    let cells = (bytes as u64).div_ceil(CELL as u64).max(MIN_CELLS);
    cells
        .checked_next_power_of_two()
        .filter(|c| *c <= (1 << 36))
        .ok_or_else(|| Error::InvalidArgument(format!("queue capacity of {bytes} bytes is too large")))
}

/// Bytes of a ring region with `cells` cells and `slots` registry slots.
pub(crate) fn region_len(cells: u64, slots: u64) -> usize {
    std::mem::size_of::<RingHeader>()
        + slots as usize * std::mem::size_of::<Slot>()
        + cells as usize * (std::mem::size_of::<CellMeta>() + CELL)
}

/// Raw pointers to one ring region inside a mapped segment.
#[derive(Clone, Copy)]
pub(crate) struct RingRef {
    hdr: *const RingHeader,
    slots: *const Slot,
    nslots: usize,
    meta: *const CellMeta,
    cells: usize,
    data: *mut u8,
}

impl RingRef {
    /// The region at `base`.
    ///
    /// Pointer arithmetic only; the pointers are valid as long as the caller keeps the mapping.
    fn at(base: *mut u8, cells: u64, slots: u64) -> RingRef {
        let hdr = base.cast::<RingHeader>();
        let slots_p = base.wrapping_add(std::mem::size_of::<RingHeader>()).cast::<Slot>();
        let meta = slots_p.wrapping_add(slots as usize).cast::<CellMeta>();
        let data = meta.wrapping_add(cells as usize).cast::<u8>();
        RingRef { hdr, slots: slots_p, nslots: slots as usize, meta, cells: cells as usize, data }
    }

    /// Initialises a fresh region in place.
    ///
    /// # Safety
    /// `base` points at `region_len(cells, slots)` writable bytes, aligned to a cache line, that
    /// nobody else uses until this returns.
    pub(crate) unsafe fn init(base: *mut u8, cells: u64, slots: u64, maxsize: u64) -> RingRef {
        let r = RingRef::at(base, cells, slots);
        // SAFETY: `hdr` is at the (cache-line aligned) start of the region, ours alone.
        unsafe { r.hdr.cast_mut().write(RingHeader::new(cells, slots, maxsize)) };
        for i in 0..slots as usize {
            // SAFETY: slot `i` lies inside the region (region_len counts `slots` slots), is
            // 64-byte aligned (the header is 5 lines), and unshared.
            unsafe { r.slots.cast_mut().wrapping_add(i).write(Slot::new()) };
        }
        for i in 0..cells as usize {
            // SAFETY: meta `i` lies inside the region, 16-byte aligned, unshared.
            unsafe { r.meta.cast_mut().wrapping_add(i).write(CellMeta::new(i as u64)) };
        }
        r
    }

    /// A view of the region.
    ///
    /// # Safety
    /// The region was initialised by [`init`](Self::init) (in any process) and stays mapped for
    /// `'a`.
    unsafe fn view<'a>(&self) -> Ring<'a> {
        Ring {
            // SAFETY: initialised, mapped for 'a; all atomics, so shared references are sound
            // while other processes update them.
            hdr: unsafe { &*self.hdr },
            // SAFETY: as above, `nslots` initialised slots.
            slots: unsafe { std::slice::from_raw_parts(self.slots, self.nslots) },
            // SAFETY: as above, `cells` initialised cell metas.
            meta: unsafe { std::slice::from_raw_parts(self.meta, self.cells) },
            is_live: owner_alive,
        }
    }
}

/// Packs a process identity into a slot owner word: `pid | start << 22` (pids fit in 22 bits).
pub(crate) fn owner_id() -> u64 {
    let (pid, start) = crate::sys::proc::self_identity();
    (pid as u64 & 0x3f_ffff) | (start << 22)
}

/// Whether the process named by an owner word lives (pid and start time both match).
pub(crate) fn owner_alive(id: u64) -> bool {
    let pid = (id & 0x3f_ffff) as i32;
    let start = id >> 22;
    if start == 0 {
        // Start time unknown (no /proc when it registered): fall back to the pid alone.
        return crate::sys::proc::id_exists(pid);
    }
    crate::sys::proc::is_alive(pid, start)
}

/// This thread's registry slots, one per ring it used, keyed by the segment's `Arc` (a `Weak`
/// keeps the allocation, so the key cannot be reused while the entry lives) and the fork
/// generation (a forked child must not use its parent's slots).
struct Entry {
    seg: Weak<Segment>,
    ring: usize,
    generation: u64,
    slot: usize,
    at: RingRef,
}

struct Slots(Vec<Entry>);

impl Drop for Slots {
    fn drop(&mut self) {
        // The thread ends: give back the slots it holds in rings that are still mapped here,
        // and forget the cached one (a later use, from another thread-local's destructor, must
        // not find a slot that is no longer ours).
        LAST_SLOT.set((0, 0, 0, 0));
        let generation = crate::sys::proc::fork_generation();
        let me = owner_id();
        for e in &self.0 {
            if e.generation != generation {
                continue;
            }
            if let Some(_seg) = e.seg.upgrade() {
                // SAFETY: `_seg` keeps the mapping alive; the region was initialised.
                let r = unsafe { e.at.view() };
                let s = &r.slots[e.slot];
                s.clear();
                let _ = s.owner.compare_exchange(me, 0, shim::Ordering::AcqRel, shim::Ordering::Relaxed);
            }
        }
    }
}

thread_local! {
    static SLOTS: RefCell<Slots> = const { RefCell::new(Slots(Vec::new())) };
    /// The entry of `SLOTS` this thread used last, as `(segment key, ring, generation, slot)`:
    /// one compare instead of a search on every put and get. Valid while that entry is in
    /// `SLOTS` (its `Weak` keeps the key's allocation, so the key cannot name another segment);
    /// the two places that remove entries, `register` and `Slots::drop`, reset it.
    static LAST_SLOT: Cell<(usize, usize, u64, usize)> = const { Cell::new((0, 0, 0, 0)) };
}

/// One ring in a segment: the bytes-level queue every typed queue and pipe end is built on.
#[derive(Clone)]
pub(crate) struct RawQueue {
    seg: Arc<Segment>,
    at: RingRef,
    ring: usize,
}

// SAFETY: the raw pointers point into `seg`'s mapping, which the Arc keeps alive; everything
// there is atomics, or bytes handed over by the ring's acquire/release protocol.
unsafe impl Send for RawQueue {}
// SAFETY: as above: every method takes `&self` and synchronises through atomics.
unsafe impl Sync for RawQueue {}

impl std::fmt::Debug for RawQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawQueue").field("seg", &self.seg).field("ring", &self.ring).finish()
    }
}

/// A claimed message: read it with [`copy_to`](Self::copy_to); dropping it releases its cells.
pub(crate) struct ClaimGuard<'a> {
    q: &'a RawQueue,
    slot: usize,
    c: Claimed,
}

impl ClaimGuard<'_> {
    /// The message length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.c.len as usize
    }

    /// Copies the message into `dst[..len]`.
    ///
    /// # Panics
    /// If `dst` is shorter than [`len`](Self::len).
    pub(crate) fn copy_to(&self, dst: &mut [u8]) {
        let dst: *mut [u8] = dst;
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and `copy_to_uninit` writes only
        // initialised bytes, so the slice stays initialised.
        self.copy_to_uninit(unsafe { &mut *(dst as *mut [std::mem::MaybeUninit<u8>]) });
    }

    /// Copies the message into `dst[..len]`, which need not be initialised (no zeroing first:
    /// for a large message that would be a second pass over memory).
    ///
    /// # Panics
    /// If `dst` is shorter than [`len`](Self::len).
    pub(crate) fn copy_to_uninit(&self, dst: &mut [std::mem::MaybeUninit<u8>]) {
        let len = self.len();
        assert!(dst.len() >= len, "destination shorter than the message");
        if self.c.inline {
            let bytes = self.c.word.to_le_bytes();
            // SAFETY: `len <= 8` bytes from a local array into `dst`, at least `len` long
            // (checked above); distinct buffers.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.as_mut_ptr().cast::<u8>(), len) };
            return;
        }
        let (off, total) = self.q.data_offset(self.c.pos);
        let first = len.min(total - off);
        let dst = dst.as_mut_ptr().cast::<u8>();
        // SAFETY: the cells [pos, pos + cells) are claimed by us: no producer writes them until we
        // release them, and the producer's writes happen-before our claim (commit/acquire). The
        // source range `off..off + first` lies inside the data area (`len` is bounded by the
        // area's size, `first` by its end); `dst` is a distinct buffer of at least `len` bytes
        // (checked above).
        unsafe { std::ptr::copy_nonoverlapping(self.q.at.data.wrapping_add(off), dst, first) };
        #[cfg(feature = "kill-points")]
        kill_point(KillPoint::ConsumerMidCopy);
        if first < len {
            // SAFETY: as above; the message wrapped, its rest starts at the data area's base.
            unsafe { std::ptr::copy_nonoverlapping(self.q.at.data, dst.wrapping_add(first), len - first) };
        }
    }

    /// Copies the message out, releases its cells, then decodes it: on the stack when it is
    /// at most [`STACK_MESSAGE`] bytes, through the thread's scratch buffer otherwise.
    ///
    /// # Errors
    /// [`Error::Codec`] if the message is not a `T`.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        let len = self.len();
        if len <= STACK_MESSAGE {
            let mut stack = [0u8; STACK_MESSAGE];
            self.copy_to(&mut stack[..len]);
            drop(self);
            return decode(&stack[..len]);
        }
        with_scratch(|buf| {
            buf.reserve(len);
            self.copy_to_uninit(buf.spare_capacity_mut());
            // SAFETY: `copy_to_uninit` initialised the first `len` bytes of the spare capacity.
            unsafe { buf.set_len(len) };
            drop(self);
            decode(buf)
        })
    }

    /// Copies the message into a new vector.
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.copy_to_uninit(v.spare_capacity_mut());
        // SAFETY: `copy_to_uninit` initialised the first `len` bytes of the spare capacity.
        unsafe { v.set_len(self.len()) };
        v
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `q` keeps the mapping alive.
        let r = unsafe { self.q.at.view() };
        r.release(&r.slots[self.slot], self.c);
        #[cfg(feature = "kill-points")]
        kill_point(KillPoint::ConsumerAfterRelease);
    }
}

impl RawQueue {
    /// The ring at `offset` in `seg`'s payload, whose region was initialised with `cells`/`slots`.
    pub(crate) fn new(seg: Arc<Segment>, offset: usize, cells: u64, slots: u64, ring: usize) -> RawQueue {
        // Register this process for the rings' asymmetric fences now, not on its first put or
        // get (it can stall for milliseconds); see `sys::membarrier`.
        crate::sys::membarrier::register_notifier();
        let base = seg.payload().wrapping_add(offset);
        RawQueue { at: RingRef::at(base, cells, slots), seg, ring }
    }

    /// The segment behind this ring.
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    #[inline]
    fn view(&self) -> Ring<'_> {
        // SAFETY: `self.seg` keeps the mapping alive for `'_`; the region was initialised by its
        // creator before the segment was published.
        unsafe { self.at.view() }
    }

    /// Offset of position `pos` in the data area, and the area's length.
    fn data_offset(&self, pos: u64) -> (usize, usize) {
        let idx = (pos & (self.at.cells as u64 - 1)) as usize;
        (idx * CELL, self.at.cells * CELL)
    }

    /// This thread's registry slot in this ring, registering on first use.
    #[inline]
    fn slot(&self) -> Result<usize> {
        let generation = crate::sys::proc::fork_generation();
        let key = Arc::as_ptr(&self.seg);
        let (k, ring, g, slot) = LAST_SLOT.get();
        if k == key as usize && ring == self.ring && g == generation {
            return Ok(slot);
        }
        self.slot_slow(generation, key)
    }

    #[cold]
    fn slot_slow(&self, generation: u64, key: *const Segment) -> Result<usize> {
        let found = SLOTS
            .try_with(|s| {
                let s = s.borrow();
                s.0.iter()
                    .find(|e| e.seg.as_ptr() == key && e.ring == self.ring && e.generation == generation)
                    .map(|e| e.slot)
            })
            .map_err(|_| {
                Error::InvalidArgument(
                    "a queue or pipe was used from a thread-local destructor after this thread's \
                     queue registry was torn down; use it before the thread ends"
                        .to_owned(),
                )
            })?;
        let slot = match found {
            Some(i) => i,
            None => self.register(generation)?,
        };
        LAST_SLOT.set((key as usize, self.ring, generation, slot));
        Ok(slot)
    }

    #[cold]
    fn register(&self, generation: u64) -> Result<usize> {
        let r = self.view();
        let me = owner_id();
        let take = |i: usize, from: u64| {
            let s = &r.slots[i];
            let ok = s.owner.compare_exchange(from, me, shim::Ordering::AcqRel, shim::Ordering::Relaxed);
            if ok.is_ok() {
                s.clear();
            }
            ok.is_ok()
        };
        let free = (0..r.slots.len()).find(|&i| take(i, 0));
        let slot = match free {
            Some(i) => i,
            None => (0..r.slots.len())
                .find(|&i| {
                    let o = r.slots[i].owner.load(shim::Ordering::Acquire);
                    o != 0 && !owner_alive(o) && take(i, o)
                })
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "more than {} threads use this queue at once (its participant registry is full)",
                        r.slots.len()
                    ))
                })?,
        };
        SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            // Forget entries of rings that are gone or that belong to our parent (and the cache,
            // which may name one of them).
            s.0.retain(|e| e.generation == generation && e.seg.strong_count() > 0);
            LAST_SLOT.set((0, 0, 0, 0));
            s.0.push(Entry { seg: Arc::downgrade(&self.seg), ring: self.ring, generation, slot, at: self.at });
        });
        Ok(slot)
    }

    /// The largest message in bytes.
    pub(crate) fn max_message(&self) -> usize {
        self.at.cells * CELL
    }

    /// Puts one message, waiting for room until `deadline` when `block`.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`], [`Error::Full`], [`Error::Closed`], or a full registry.
    #[inline]
    pub(crate) fn put_bytes(&self, buf: &[u8], block: bool, deadline: Deadline) -> Result<()> {
        if buf.len() > self.max_message() {
            return Err(Error::MessageTooLarge { len: buf.len(), max: self.max_message() });
        }
        let slot = self.slot()?;
        let r = self.view();
        let me = &r.slots[slot];
        let k = ring::cells_for(buf.len() as u64);
        let t = r.reserve(me, k, block, deadline).map_err(|f| match f {
            Fail::WouldBlock => Error::Full,
            Fail::Closed => Error::Closed,
        })?;
        #[cfg(feature = "kill-points")]
        kill_point(KillPoint::ProducerAfterReserve);
        if buf.len() <= ring::INLINE {
            r.commit_inline(me, t, buf);
        } else {
            self.write_at(t, buf);
            r.commit(me, t, buf.len() as u64);
        }
        Ok(())
    }

    fn write_at(&self, t: u64, buf: &[u8]) {
        let (off, total) = self.data_offset(t);
        let first = buf.len().min(total - off);
        // SAFETY: positions [t, t + k) are reserved by us and released by the previous lap's
        // consumer (wait_released): nobody else reads or writes these bytes until our commit.
        // The range lies inside the data area; `buf` is a distinct local buffer.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.at.data.wrapping_add(off), first) };
        #[cfg(feature = "kill-points")]
        kill_point(KillPoint::ProducerMidWrite);
        if first < buf.len() {
            // SAFETY: as above; the message wraps to the data area's base.
            unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr().wrapping_add(first), self.at.data, buf.len() - first) };
        }
    }

    /// Claims the next message, waiting until `deadline` when `block`.
    ///
    /// # Errors
    /// [`Error::Empty`] (nothing in time), [`Error::Closed`] (closed and drained), or a full
    /// registry.
    pub(crate) fn claim(&self, block: bool, deadline: Deadline) -> Result<ClaimGuard<'_>> {
        let (slot, c) = self.claim_raw(block, deadline)?;
        Ok(ClaimGuard { q: self, slot, c })
    }

    /// Claims the next message without a guard: the caller releases it (`release_inline`) or
    /// wraps it in a [`ClaimGuard`].
    #[inline(always)]
    fn claim_raw(&self, block: bool, deadline: Deadline) -> Result<(usize, Claimed)> {
        let slot = self.slot()?;
        let r = self.view();
        let c = r.claim(&r.slots[slot], block, deadline).map_err(|f| match f {
            Fail::WouldBlock => Error::Empty,
            Fail::Closed => Error::Closed,
        })?;
        Ok((slot, c))
    }

    /// Releases the cell of an inline message claimed by `claim_raw`, whose bytes the caller
    /// took from `c.word` already. (Profiles showed moving a guard through the get path cost
    /// more than the rest of an 8-byte get.)
    #[inline(always)]
    fn release_inline(&self, slot: usize, c: Claimed) {
        let r = self.view();
        r.release(&r.slots[slot], c);
        #[cfg(feature = "kill-points")]
        kill_point(KillPoint::ConsumerAfterRelease);
    }

    /// Takes the next message into `out` (cleared first); returns its length.
    ///
    /// # Errors
    /// As [`claim`](Self::claim).
    #[inline]
    pub(crate) fn get_into(&self, out: &mut Vec<u8>, block: bool, deadline: Deadline) -> Result<usize> {
        let (slot, c) = self.claim_raw(block, deadline)?;
        let len = c.len as usize;
        out.clear();
        if c.inline {
            out.reserve(ring::INLINE);
            // SAFETY: the capacity is at least 8 bytes (reserved above): write the whole word
            // (one store, no copy call), of which the first `len <= 8` bytes are the message.
            unsafe { out.as_mut_ptr().cast::<[u8; ring::INLINE]>().write_unaligned(c.word.to_le_bytes()) };
            // SAFETY: those `len` bytes were just initialised.
            unsafe { out.set_len(len) };
            self.release_inline(slot, c);
            return Ok(len);
        }
        let g = ClaimGuard { q: self, slot, c };
        out.reserve(len);
        g.copy_to_uninit(&mut out.spare_capacity_mut()[..len]);
        // SAFETY: `copy_to_uninit` initialised the first `len` bytes of the spare capacity.
        unsafe { out.set_len(len) };
        Ok(len) // dropping `g` releases the cells
    }

    /// Takes the next message and decodes it as a `T`.
    ///
    /// # Errors
    /// As [`claim`](Self::claim); [`Error::Codec`] if the message is not a `T`.
    pub(crate) fn get_value<T: serde::de::DeserializeOwned>(&self, block: bool, deadline: Deadline) -> Result<T> {
        let (slot, c) = self.claim_raw(block, deadline)?;
        if c.inline {
            let bytes = c.word.to_le_bytes();
            self.release_inline(slot, c);
            return decode(&bytes[..c.len as usize]);
        }
        ClaimGuard { q: self, slot, c }.decode()
    }

    /// Messages waiting (approximate, like Python's).
    pub(crate) fn qsize(&self) -> usize {
        self.view().qsize() as usize
    }

    /// Whether no message is reserved past the head (approximate).
    pub(crate) fn is_empty(&self) -> bool {
        !self.view().has_data()
    }

    /// Whether a get would find a committed message now.
    pub(crate) fn is_ready(&self) -> bool {
        self.view().head_ready()
    }

    /// Whether a get would find a committed message, after skipping any cells at the head that
    /// producers reserved and died before committing (which nothing else would skip unless a
    /// get ran). Reads `/proc` for the producers of such cells: for `wait`'s slow checks only.
    pub(crate) fn is_ready_skipping_dead(&self) -> bool {
        let Ok(slot) = self.slot() else {
            return self.is_ready();
        };
        let r = self.view();
        let me = &r.slots[slot];
        for _ in 0..r.cells() {
            if r.head_ready() {
                return true;
            }
            let h = r.hdr.head.0.pos.load(shim::Ordering::Acquire);
            if r.hdr.tail.0.pos.load(shim::Ordering::Acquire) <= h || !r.skip_if_producer_dead(me, h) {
                return false; // empty, or its producer is alive and writing
            }
        }
        r.head_ready()
    }

    /// Whether a one-cell message would not fit now (approximate).
    pub(crate) fn is_full(&self) -> bool {
        !self.view().has_room(1)
    }

    /// Closes the ring for puts; gets drain it, then fail with [`Error::Closed`].
    pub(crate) fn close(&self) {
        self.view().close();
    }

    /// Whether the ring was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.view().is_closed()
    }

    /// The "not empty" eventcount (for `wait`).
    pub(crate) fn not_empty(&self) -> &eventcount::FastEventCount {
        &self.view().hdr.not_empty.0
    }

    /// Wakes everyone sleeping for data (after a peer closed its end).
    pub(crate) fn wake_readers(&self) {
        self.view().hdr.not_empty.0.notify_all();
    }

    /// Wakes everyone sleeping for room.
    pub(crate) fn wake_writers(&self) {
        self.view().hdr.not_full.0.notify_all();
    }
}

thread_local! {
    /// Per-thread scratch for encoding and decoding messages.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a reusable scratch buffer (a fresh one if the scratch is busy).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut b) => {
            b.clear();
            f(&mut b)
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Messages up to this many bytes are encoded and decoded in a stack buffer.
const STACK_MESSAGE: usize = 64;

/// Encodes `value` with postcard and hands the bytes to `put`: from a stack buffer when they
/// fit in [`STACK_MESSAGE`] bytes (no thread-local, no heap), else from the scratch buffer.
///
/// # Errors
/// [`Error::Codec`] if the value cannot be encoded; whatever `put` returns.
pub(crate) fn with_encoded<T: serde::Serialize + ?Sized, R>(
    value: &T,
    put: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<R> {
    let mut stack = [0u8; STACK_MESSAGE];
    match postcard::to_slice(value, &mut stack) {
        Ok(bytes) => put(bytes),
        Err(postcard::Error::SerializeBufferFull) => with_scratch(|buf| {
            encode(value, buf)?;
            put(buf)
        }),
        Err(e) => Err(Error::Codec(e.to_string())),
    }
}

/// Encodes `value` with postcard into `buf` (cleared first).
pub(crate) fn encode<T: serde::Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    buf.clear();
    let v = postcard::to_extend(value, std::mem::take(buf)).map_err(|e| Error::Codec(e.to_string()))?;
    *buf = v;
    Ok(())
}

/// Decodes a postcard message.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Codec(e.to_string()))
}

/// Test-only points where a process can be made to SIGKILL itself (feature `kill-points`).
#[cfg(feature = "kill-points")]
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum KillPoint {
    /// Producer: intent written, tail not yet moved.
    ProducerIntent = 1,
    /// Producer: cells reserved, nothing written.
    ProducerAfterReserve,
    /// Producer: the first part of the message written.
    ProducerMidWrite,
    /// Producer: everything written, not committed.
    ProducerBeforeCommit,
    /// Producer: committed, consumers not woken.
    ProducerAfterCommit,
    /// Consumer: head moved, nothing copied.
    ConsumerAfterClaim,
    /// Consumer: the first part copied out.
    ConsumerMidCopy,
    /// Consumer: half of the cells released.
    ConsumerMidRelease,
    /// Consumer: all cells released.
    ConsumerAfterRelease,
}

#[cfg(feature = "kill-points")]
static KILL_AT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Arms (or disarms) a kill point in this process: the next time the queue code reaches it, the
/// process SIGKILLs itself. Test-only.
#[cfg(feature = "kill-points")]
#[doc(hidden)]
pub fn set_kill_point(p: Option<KillPoint>) {
    KILL_AT.store(p.map_or(0, |p| p as u32), std::sync::atomic::Ordering::SeqCst);
}

#[cfg(feature = "kill-points")]
pub(crate) fn kill_point(p: KillPoint) {
    if KILL_AT.load(std::sync::atomic::Ordering::Relaxed) == p as u32 {
        crate::sys::proc::kill_self();
    }
}
