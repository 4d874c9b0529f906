//! The lock-free core of every queue and pipe: a bounded multi-producer multi-consumer ring of
//! fixed-size cells with per-cell sequence stamps (Vyukov's bounded MPMC queue, extended to
//! messages spanning several cells and to participants that die at any instruction).
//!
//! # Positions and stamps
//!
//! `tail` and `head` count cells since creation and only grow; cell `p & (n - 1)` holds position
//! `p`. Each cell has a stamp, which says for which position it is ready, and a second word:
//!
//! | stamp                         | meaning                                                        |
//! |-------------------------------|----------------------------------------------------------------|
//! | `free(p) = p << 4`            | released by the consumer of `p - n`: a producer may write `p`  |
//! | `committed(p) = p << 4 \| 1`   | first cell of a committed message at `p`, its length in `word` |
//! | `p << 4 \| (2 + len)`          | a committed message of `len <= 8` bytes held in `word` itself  |
//!
//! A message of `len` bytes takes `k = max(1, ceil(len / 64))` consecutive positions (its bytes
//! wrap around the end of the data area). Only its first stamp changes on commit; the consumer
//! that takes it releases all `k` cells, each to `free(p + n)`. A message of at most
//! [`INLINE`] bytes travels in its cell's `word` and leaves the data area alone: one cache line
//! carries four such messages, where a message in the data area moves a whole line of its own.
//!
//! ```text
//! producer                                   consumer
//! t = tail; space? (stamp(t+k-1) == free,    h = head; s = stamp(h)
//!   else t + k <= head + n)                  s == commit(h): k from word
//! intent := [t, t+k)                         intent := [h, h+k)
//! CAS tail t -> t+k            (reserve)     CAS head h -> h+k            (claim)
//! wait stamp(p) == free(p) for each p        copy the bytes out
//! copy the bytes in (or, len <= 8: none)     stamp(p) := free(p+n) for each p  (release)
//! word(t) := len (or the bytes)              intent := empty; wake producers
//! stamp(t) := commit(t) (or inline(t, len))
//! intent := empty; wake consumers
//! ```
//!
//! Positions fit in the stamp's upper 60 bits: a ring stops at 2^60 cells since creation
//! (36 years at a billion messages a second).
//!
//! # Death at any instruction
//!
//! Every thread that uses a ring owns a slot in its registry: the owning process's identity (pid
//! and start time: pids are reused) and its current *intent*, the positions it is about to
//! reserve (producer) or has claimed (consumer). An intent is written before the CAS that makes it
//! real and cleared only after the commit or release that ends it, and the CAS publishes it to
//! whoever later reads that position word. So:
//!
//! - a consumer at `h < tail` whose cell stays uncommitted, when no *live* slot's producer intent
//!   covers `h`, knows the reserver died: it claims that one cell and releases it (the dead
//!   producer's message is lost, nothing else);
//! - a producer (or a consumer) waiting for cell `p` to be released, when no live slot's consumer
//!   intent covers `p - n`, knows the claimer died: it releases the cell itself with a CAS on the
//!   stamp it saw (the dead consumer's message is lost, nothing else).
//!
//! These checks read `/proc` only on the slow path (after spinning and sleeping a slice), and
//! only for slots whose intent covers the stuck position.
//!
//! This file is also compiled by `tests/loom_ring.rs` over loom's atomics: it may only use what
//! `super::shim` and `super::eventcount` provide.

use super::eventcount::FastEventCount;
use super::shim::{AtomicU32, AtomicU64, Deadline, Ordering, Spinner, deadline_passed, slice_deadline, spin_hint};

/// Bytes of payload per cell.
pub(crate) const CELL: usize = 64;

/// The first and the longest sleep before re-checking a stalled peer for death.
const FIRST_SLICE: std::time::Duration = std::time::Duration::from_millis(1);
const MAX_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

/// The longest back-off between two polls of a waiter, in spins.
const MAX_PAUSE: u32 = 64;

/// One back-off step of a polling waiter: `*pause` spins, then the next step twice as long (up
/// to [`MAX_PAUSE`]), so that a waiter polls the line its peer writes less and less often. False
/// once the spinner's budget is spent.
#[inline]
fn backoff(spinner: &mut Spinner, pause: &mut u32) -> bool {
    for _ in 0..*pause {
        if !spinner.spin() {
            return false;
        }
    }
    *pause = (*pause * 2).min(MAX_PAUSE);
    true
}

/// A value on its own cache line.
#[repr(C, align(64))]
pub(crate) struct Line<T>(pub(crate) T);

/// A position word and the message count that moves with it.
#[repr(C)]
pub(crate) struct Pos {
    /// Cells reserved (tail) or claimed (head) since creation.
    pub(crate) pos: AtomicU64,
    /// Messages committed (tail) or taken (head) since creation: `qsize` is their difference.
    pub(crate) count: AtomicU64,
}

/// Fixed parameters and the closed flag.
#[repr(C)]
pub(crate) struct Conf {
    /// Number of cells (a power of two).
    pub(crate) cells: AtomicU64,
    /// Number of registry slots.
    pub(crate) slots: AtomicU64,
    /// Most messages held at once; 0 = no limit but the bytes.
    pub(crate) maxsize: AtomicU64,
    /// 1 once closed.
    pub(crate) closed: AtomicU32,
    pub(crate) _reserved: AtomicU32,
}

/// The ring's shared header. `#[repr(C)]`, every hot word on its own cache line.
#[repr(C)]
pub(crate) struct RingHeader {
    /// Producers' position.
    pub(crate) tail: Line<Pos>,
    /// Consumers' position.
    pub(crate) head: Line<Pos>,
    /// Consumers sleep here; bumped by every commit and by close.
    pub(crate) not_empty: Line<FastEventCount>,
    /// Producers sleep here; bumped by every release and by close.
    pub(crate) not_full: Line<FastEventCount>,
    /// Parameters.
    pub(crate) conf: Line<Conf>,
}

impl RingHeader {
    /// A fresh header (for initialising shared memory in place).
    pub(crate) fn new(cells: u64, slots: u64, maxsize: u64) -> RingHeader {
        RingHeader {
            tail: Line(Pos { pos: AtomicU64::new(0), count: AtomicU64::new(0) }),
            head: Line(Pos { pos: AtomicU64::new(0), count: AtomicU64::new(0) }),
            not_empty: Line(FastEventCount::new()),
            not_full: Line(FastEventCount::new()),
            conf: Line(Conf {
                cells: AtomicU64::new(cells),
                slots: AtomicU64::new(slots),
                maxsize: AtomicU64::new(maxsize),
                closed: AtomicU32::new(0),
                _reserved: AtomicU32::new(0),
            }),
        }
    }
}

/// One participant (a thread of some process): who it is and what it is doing.
#[repr(C, align(64))]
pub(crate) struct Slot {
    /// `pid | start_time << 22` of the owning process; 0 = free.
    pub(crate) owner: AtomicU64,
    /// Producer intent `[prod_lo, prod_hi)`; empty when `prod_hi == 0`.
    pub(crate) prod_lo: AtomicU64,
    pub(crate) prod_hi: AtomicU64,
    /// Consumer intent `[cons_lo, cons_hi)`.
    pub(crate) cons_lo: AtomicU64,
    pub(crate) cons_hi: AtomicU64,
}

impl Slot {
    /// A free slot.
    pub(crate) fn new() -> Slot {
        Slot {
            owner: AtomicU64::new(0),
            prod_lo: AtomicU64::new(0),
            prod_hi: AtomicU64::new(0),
            cons_lo: AtomicU64::new(0),
            cons_hi: AtomicU64::new(0),
        }
    }

    /// Forgets any intent (after taking over a dead owner's slot).
    pub(crate) fn clear(&self) {
        self.prod_hi.store(0, Ordering::Release);
        self.cons_hi.store(0, Ordering::Release);
    }
}

/// A cell's stamp and, in a message's first cell, the message length (or the message itself).
#[repr(C)]
pub(crate) struct CellMeta {
    pub(crate) stamp: AtomicU64,
    /// The length of a message in the data area, or the bytes of an inline one (little endian).
    pub(crate) word: AtomicU64,
}

impl CellMeta {
    /// The meta of cell `i` in a fresh ring.
    pub(crate) fn new(i: u64) -> CellMeta {
        CellMeta { stamp: AtomicU64::new(free(i)), word: AtomicU64::new(0) }
    }
}

/// Bits of a stamp below the position.
const STATE_BITS: u32 = 4;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
/// State of the first cell of a committed message whose bytes are in the data area.
const EXTERNAL: u64 = 1;
/// The longest message carried in its cell's `word`.
pub(crate) const INLINE: usize = 8;

/// Stamp of a cell ready for a producer writing position `p`.
#[inline]
pub(crate) const fn free(p: u64) -> u64 {
    p << STATE_BITS
}

/// Stamp of the first cell of a message committed at position `p`, its bytes in the data area.
#[inline]
pub(crate) const fn committed(p: u64) -> u64 {
    (p << STATE_BITS) | EXTERNAL
}

/// Stamp of a message of `len <= INLINE` bytes committed at position `p` in its cell's word.
#[inline]
pub(crate) const fn committed_inline(p: u64, len: usize) -> u64 {
    (p << STATE_BITS) | (2 + len as u64)
}

/// Whether stamp `s` marks a message committed at position `p` (in either form).
#[inline]
pub(crate) const fn is_committed(s: u64, p: u64) -> bool {
    s >> STATE_BITS == p && s & STATE_MASK != 0
}

/// The position a stamp speaks of.
#[inline]
const fn stamp_pos(s: u64) -> u64 {
    s >> STATE_BITS
}

/// For a committed stamp and its cell's word: the message length, and whether it is inline.
/// Both are bounded whatever the shared bytes say (a corrupt or hostile segment must not make
/// a reader copy past its buffers): an inline length to [`INLINE`], an external one to the
/// `max` bytes of the data area.
#[inline]
fn message_of(s: u64, word: u64, max: u64) -> (u64, bool) {
    match s & STATE_MASK {
        EXTERNAL => (word.min(max), false),
        st => ((st - 2).min(INLINE as u64), true),
    }
}

/// Cells taken by a message of `len` bytes.
#[inline]
pub(crate) const fn cells_for(len: u64) -> u64 {
    let k = len.div_ceil(CELL as u64);
    if k == 0 { 1 } else { k }
}

/// Outcome of a reservation attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reserve {
    /// Positions `[t, t + k)` are ours.
    Ok(u64),
    /// No room right now.
    Full,
    /// The ring was closed.
    Closed,
}

/// A claimed message: positions `[pos, pos + cells)`, `len` bytes, in the data area or, when
/// `inline` is set, in `word`'s first `len` bytes (little endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claimed {
    pub(crate) pos: u64,
    pub(crate) len: u64,
    pub(crate) cells: u64,
    pub(crate) inline: bool,
    pub(crate) word: u64,
}

/// Outcome of a claim attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// A message is ours.
    Msg(Claimed),
    /// Nothing reserved past the head.
    Empty,
    /// The head position is reserved but not committed yet (producer writing, or dead).
    Pending(u64),
}

/// Why a blocking operation gave up.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Fail {
    /// Full (put) or empty (get) at the deadline, or at once when not blocking.
    WouldBlock,
    /// Closed (put), or closed and drained (get).
    Closed,
}

/// Which half of a slot's intent to look at.
#[derive(Clone, Copy)]
enum Role {
    Producer,
    Consumer,
}

/// A view of one ring: its header, registry and cell metadata (the payload bytes are the
/// caller's business: they are written between `reserve` and `commit` and read between `claim`
/// and `release`, and these calls order them).
pub(crate) struct Ring<'a> {
    pub(crate) hdr: &'a RingHeader,
    pub(crate) slots: &'a [Slot],
    pub(crate) meta: &'a [CellMeta],
    /// Whether the process with this owner id is still alive.
    pub(crate) is_live: fn(u64) -> bool,
}

impl Ring<'_> {
    /// Number of cells.
    #[inline]
    pub(crate) fn cells(&self) -> u64 {
        self.meta.len() as u64
    }

    #[inline]
    fn cell(&self, p: u64) -> &CellMeta {
        let i = (p & (self.cells() - 1)) as usize;
        &self.meta[i]
    }

    /// Whether `close` was called.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.hdr.conf.0.closed.load(Ordering::Acquire) != 0
    }

    /// Closes the ring: later reservations fail, claims drain what is left. Wakes everyone.
    pub(crate) fn close(&self) {
        self.hdr.conf.0.closed.store(1, Ordering::SeqCst);
        self.hdr.not_empty.0.notify_all();
        self.hdr.not_full.0.notify_all();
    }

    /// Messages committed and not yet taken (a snapshot).
    ///
    /// With a maxsize the ring keeps exact put/get counts (it needs them at every put); without
    /// one it does not pay for two more atomic read-modify-writes per message, and counts by
    /// walking the committed messages between head and tail instead (at most `cells()` steps).
    pub(crate) fn qsize(&self) -> u64 {
        if self.hdr.conf.0.maxsize.load(Ordering::Relaxed) != 0 {
            let gets = self.hdr.head.0.count.load(Ordering::Acquire);
            let puts = self.hdr.tail.0.count.load(Ordering::Acquire);
            return puts.saturating_sub(gets);
        }
        let n = self.cells();
        let mut p = self.hdr.head.0.pos.load(Ordering::Acquire);
        let t = self.hdr.tail.0.pos.load(Ordering::Acquire);
        let mut count = 0;
        let mut steps = 0;
        while p < t && steps < n {
            let cell = self.cell(p);
            let s = cell.stamp.load(Ordering::Acquire);
            if is_committed(s, p) {
                count += 1;
                let word = cell.word.load(Ordering::Acquire);
                let (len, inline) = message_of(s, word, n * CELL as u64);
                // The word is the length only while the stamp still says so (the message may
                // have been taken and its cell reused meanwhile): else step one cell.
                let stable = cell.stamp.load(Ordering::Acquire) == s;
                p += if inline || !stable { 1 } else { cells_for(len).min(n) };
            } else {
                p += 1;
            }
            steps += 1;
        }
        count
    }

    /// Whether any position is reserved past the head (a message is there or on its way).
    #[inline]
    pub(crate) fn has_data(&self) -> bool {
        let h = self.hdr.head.0.pos.load(Ordering::Acquire);
        self.hdr.tail.0.pos.load(Ordering::Acquire) > h
    }

    /// Whether the message at the head is committed (a get would not block).
    pub(crate) fn head_ready(&self) -> bool {
        let h = self.hdr.head.0.pos.load(Ordering::Acquire);
        is_committed(self.cell(h).stamp.load(Ordering::Acquire), h)
    }

    /// Whether `k` more cells (and, with a maxsize, one more message) fit now.
    pub(crate) fn has_room(&self, k: u64) -> bool {
        let t = self.hdr.tail.0.pos.load(Ordering::Acquire);
        let h = self.hdr.head.0.pos.load(Ordering::Acquire);
        if t + k > h + self.cells() {
            return false;
        }
        let max = self.hdr.conf.0.maxsize.load(Ordering::Relaxed);
        max == 0 || self.qsize() < max
    }

    /// Whether a live participant's intent (of `role`) covers position `x`.
    fn covered(&self, x: u64, role: Role) -> bool {
        self.slots.iter().any(|s| {
            let (lo, hi) = match role {
                Role::Producer => (s.prod_lo.load(Ordering::Acquire), s.prod_hi.load(Ordering::Acquire)),
                Role::Consumer => (s.cons_lo.load(Ordering::Acquire), s.cons_hi.load(Ordering::Acquire)),
            };
            if !(lo <= x && x < hi) {
                return false;
            }
            let owner = s.owner.load(Ordering::Acquire);
            owner != 0 && (self.is_live)(owner)
        })
    }

    // ---- producers ----------------------------------------------------------------------------

    /// Tries to reserve `k` cells (`1 <= k <= cells()`) for one message.
    #[inline]
    pub(crate) fn try_reserve(&self, me: &Slot, k: u64) -> Reserve {
        let n = self.cells();
        let tail = &self.hdr.tail.0;
        let maxsize = self.hdr.conf.0.maxsize.load(Ordering::Relaxed);
        loop {
            if self.is_closed() {
                me.prod_hi.store(0, Ordering::Release);
                return Reserve::Closed;
            }
            let t = tail.pos.load(Ordering::Relaxed);
            let last = t + k - 1;
            // Fast path: the last cell we need was released for this lap, so every earlier one
            // was claimed (claims go in order) and will be released shortly. Else ask the head.
            if self.cell(last).stamp.load(Ordering::Acquire) != free(last) {
                let h = self.hdr.head.0.pos.load(Ordering::Acquire);
                if t + k > h + n {
                    if tail.pos.load(Ordering::Relaxed) != t {
                        spin_hint();
                        continue;
                    }
                    me.prod_hi.store(0, Ordering::Release);
                    return Reserve::Full;
                }
            }
            if maxsize != 0 && self.qsize() >= maxsize {
                me.prod_hi.store(0, Ordering::Release);
                return Reserve::Full;
            }
            me.prod_lo.store(t, Ordering::Release);
            me.prod_hi.store(t + k, Ordering::Release);
            #[cfg(feature = "kill-points")]
            super::kill_point(super::KillPoint::ProducerIntent);
            // Release: whoever reads a tail past `t` also sees our intent.
            if tail.pos.compare_exchange(t, t + k, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return Reserve::Ok(t);
            }
        }
    }

    /// After a reservation of `[t, t + k)`: waits until every cell was released by the consumer
    /// of the previous lap, releasing it ourselves if that consumer died. Short: those cells are
    /// claimed already, their consumer is copying them out.
    #[inline]
    pub(crate) fn wait_released(&self, t: u64, k: u64) {
        for p in t..t + k {
            if self.cell(p).stamp.load(Ordering::Acquire) != free(p) {
                self.wait_released_from(p, t + k);
                return;
            }
        }
    }

    /// `wait_released` from position `from` on, where the stamp was not free yet.
    #[cold]
    fn wait_released_from(&self, from: u64, end: u64) {
        let n = self.cells();
        for p in from..end {
            let cell = self.cell(p);
            let want = free(p);
            let mut spinner = Spinner::new();
            let mut slice = FIRST_SLICE;
            loop {
                let s = cell.stamp.load(Ordering::Acquire);
                if s == want {
                    break;
                }
                if spinner.spin() {
                    continue;
                }
                let ready = || (cell.stamp.load(Ordering::Acquire) == want).then_some(());
                if self.hdr.not_full.0.wait_until(slice_deadline(None, slice), ready).is_some() {
                    break;
                }
                slice = (slice * 2).min(MAX_SLICE);
                self.release_if_claimer_dead(p - n, s);
            }
        }
    }

    /// Cell of position `q` (claimed, stamp `s` of lap `q`) is still not released: if no live
    /// consumer holds it, its claimer died; release it for position `q + n`.
    fn release_if_claimer_dead(&self, q: u64, s: u64) {
        if self.covered(q, Role::Consumer) {
            return;
        }
        let n = self.cells();
        // A CAS from the stamp we saw: if the claimer released it meanwhile, this fails.
        if self.cell(q).stamp.compare_exchange(s, free(q + n), Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.hdr.not_full.0.notify_all();
        }
    }

    /// Publishes the message written at `[t, ..)`: one release store of its first stamp.
    pub(crate) fn commit(&self, me: &Slot, t: u64, len: u64) {
        self.publish(me, t, len, committed(t));
    }

    /// Publishes a message of `bytes.len() <= INLINE` bytes in the word of cell `t` (reserved
    /// with `k = 1`): nothing in the data area.
    #[inline]
    pub(crate) fn commit_inline(&self, me: &Slot, t: u64, bytes: &[u8]) {
        debug_assert!(bytes.len() <= INLINE, "an inline message is at most {INLINE} bytes");
        let word = match <[u8; INLINE]>::try_from(bytes) {
            Ok(all) => u64::from_le_bytes(all),
            Err(_) => bytes.iter().rev().fold(0, |w, b| (w << 8) | u64::from(*b)),
        };
        self.publish(me, t, word, committed_inline(t, bytes.len()));
    }

    #[inline]
    fn publish(&self, me: &Slot, t: u64, word: u64, stamp: u64) {
        let cell = self.cell(t);
        cell.word.store(word, Ordering::Relaxed);
        #[cfg(feature = "kill-points")]
        super::kill_point(super::KillPoint::ProducerBeforeCommit);
        cell.stamp.store(stamp, Ordering::Release);
        // After the commit: a consumer that sees the intent gone also sees the commit.
        me.prod_hi.store(0, Ordering::Release);
        if self.hdr.conf.0.maxsize.load(Ordering::Relaxed) != 0 {
            self.hdr.tail.0.count.fetch_add(1, Ordering::Release);
        }
        #[cfg(feature = "kill-points")]
        super::kill_point(super::KillPoint::ProducerAfterCommit);
        self.hdr.not_empty.0.notify_all();
    }

    /// Spins (with back-off) until the ring has room again, reading only the tail word and the
    /// stamp of one cell: reading `head` here would pull the consumers' line away from under
    /// their CAS. A producer that found the ring full waits, for a few polls, until the
    /// consumers have released more than it needs (up to 128 cells), not just its own
    /// cells: resuming on the very cell a consumer just released keeps both on the same cache
    /// lines, message after message. With a maxsize the room also depends on the count, so it
    /// simply pauses. False once the spin budget is spent.
    fn spin_for_room(&self, k: u64, spinner: &mut Spinner) -> bool {
        let n = self.cells();
        let t = self.hdr.tail.0.pos.load(Ordering::Relaxed);
        let last = t + k - 1;
        let counted = self.hdr.conf.0.maxsize.load(Ordering::Relaxed) != 0;
        let mut want = last + (n / 4).min(128).min(n - k);
        let mut pause = 1u32;
        loop {
            if !backoff(spinner, &mut pause) {
                return false;
            }
            if counted {
                return true;
            }
            if pause == MAX_PAUSE {
                want = last; // the consumers are slow to free more: take what we need
            }
            if self.cell(want).stamp.load(Ordering::Relaxed) == free(want)
                || self.hdr.tail.0.pos.load(Ordering::Relaxed) != t
                || self.is_closed()
            {
                return true;
            }
        }
    }

    /// Reserves room for `k` cells, waiting (spin, then sleep) until `deadline` when `block`.
    #[inline]
    pub(crate) fn reserve(&self, me: &Slot, k: u64, block: bool, deadline: Deadline) -> Result<u64, Fail> {
        match self.try_reserve(me, k) {
            Reserve::Ok(t) => {
                self.wait_released(t, k);
                Ok(t)
            }
            first => self.reserve_slow(me, k, first, block, deadline),
        }
    }

    /// `reserve` after a first attempt that found no room (it is not repeated at once: another
    /// look at `head` right away only steals the consumers' line).
    #[cold]
    fn reserve_slow(&self, me: &Slot, k: u64, first: Reserve, block: bool, deadline: Deadline) -> Result<u64, Fail> {
        let mut spinner = Spinner::new();
        let mut next = Some(first);
        loop {
            let attempt = next.take().unwrap_or_else(|| self.try_reserve(me, k));
            match attempt {
                Reserve::Ok(t) => {
                    self.wait_released(t, k);
                    return Ok(t);
                }
                Reserve::Closed => return Err(Fail::Closed),
                Reserve::Full => {
                    if !block || deadline_passed(deadline) {
                        return Err(Fail::WouldBlock);
                    }
                    if self.spin_for_room(k, &mut spinner) {
                        continue;
                    }
                    // Sleep in slices: a dead consumer that claimed cells we need releases no
                    // wake-up, but its cells still count as claimed (head moved), so room
                    // appears only once someone releases them: `wait_released` does that.
                    let d = slice_deadline(deadline, MAX_SLICE);
                    self.hdr.not_full.0.wait_until(d, || (self.has_room(k) || self.is_closed()).then_some(()));
                }
            }
        }
    }

    // ---- consumers ----------------------------------------------------------------------------

    /// Tries to claim the message at the head.
    #[inline]
    pub(crate) fn try_claim(&self, me: &Slot) -> Claim {
        let n = self.cells();
        let head = &self.hdr.head.0;
        let mut announced = false;
        loop {
            let h = head.pos.load(Ordering::Acquire);
            let cell = self.cell(h);
            let s = cell.stamp.load(Ordering::Acquire);
            if is_committed(s, h) {
                // An inline message takes one cell; only a data-area one needs its length here.
                let k =
                    if s & STATE_MASK == EXTERNAL { cells_for(cell.word.load(Ordering::Relaxed)).min(n) } else { 1 };
                me.cons_lo.store(h, Ordering::Release);
                me.cons_hi.store(h + k, Ordering::Release);
                announced = true;
                // Release: a producer that reads a head past `h` also sees our intent.
                if head.pos.compare_exchange(h, h + k, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    if self.hdr.conf.0.maxsize.load(Ordering::Relaxed) != 0 {
                        head.count.fetch_add(1, Ordering::Release);
                    }
                    // Ours now: the word cannot change until we release the cell.
                    let word = cell.word.load(Ordering::Relaxed);
                    let (len, inline) = message_of(s, word, n * CELL as u64);
                    #[cfg(feature = "kill-points")]
                    super::kill_point(super::KillPoint::ConsumerAfterClaim);
                    return Claim::Msg(Claimed { pos: h, len, cells: k, inline, word });
                }
                continue;
            }
            if stamp_pos(s) > h {
                spin_hint();
                continue; // the head moved on and the cell was reused meanwhile
            }
            let t = self.hdr.tail.0.pos.load(Ordering::Acquire);
            if head.pos.load(Ordering::Acquire) != h {
                spin_hint();
                continue;
            }
            if announced {
                me.cons_hi.store(0, Ordering::Release);
            }
            return if t <= h { Claim::Empty } else { Claim::Pending(h) };
        }
    }

    /// Releases the cells of a message once its bytes are copied out.
    #[inline]
    pub(crate) fn release(&self, me: &Slot, c: Claimed) {
        let n = self.cells();
        for p in c.pos..c.pos + c.cells {
            #[cfg(feature = "kill-points")]
            if p == c.pos + c.cells / 2 && p != c.pos {
                super::kill_point(super::KillPoint::ConsumerMidRelease);
            }
            self.cell(p).stamp.store(free(p + n), Ordering::Release);
        }
        me.cons_hi.store(0, Ordering::Release);
        self.hdr.not_full.0.notify_all();
    }

    /// The head `h` stays uncommitted: if its producer died, claim and release that one cell.
    /// Returns whether anything changed (the caller should try again).
    pub(crate) fn skip_if_producer_dead(&self, me: &Slot, h: u64) -> bool {
        let n = self.cells();
        let head = &self.hdr.head.0;
        let cell = self.cell(h);
        let s = cell.stamp.load(Ordering::Acquire);
        if is_committed(s, h) || stamp_pos(s) > h || head.pos.load(Ordering::Acquire) != h {
            return true;
        }
        if self.covered(h, Role::Producer) {
            return false; // its producer is alive and writing
        }
        if s != free(h) && self.covered(h.wrapping_sub(n), Role::Consumer) {
            return false; // the previous lap's consumer is alive and still copying this cell
        }
        // Seen with the intent gone: a commit that came before the clearing is visible now.
        if cell.stamp.load(Ordering::Acquire) != s {
            return true;
        }
        // The producer died between reservation and commit, and can commit nothing any more.
        me.cons_lo.store(h, Ordering::Release);
        me.cons_hi.store(h + 1, Ordering::Release);
        if head.pos.compare_exchange(h, h + 1, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            me.cons_hi.store(0, Ordering::Release);
            return true;
        }
        cell.stamp.store(free(h + n), Ordering::Release);
        me.cons_hi.store(0, Ordering::Release);
        self.hdr.not_full.0.notify_all();
        true
    }

    /// Spins (with back-off) until the head cell looks committed or the head moved, reading only
    /// the head word and that cell's stamp: the producers' next commit lands there, while reading
    /// `tail` would pull their line away from under their CAS. False once the spin budget is
    /// spent (then the caller sleeps).
    fn spin_for_head(&self, spinner: &mut Spinner) -> bool {
        let h = self.hdr.head.0.pos.load(Ordering::Relaxed);
        let cell = self.cell(h);
        let mut pause = 1u32;
        loop {
            if !backoff(spinner, &mut pause) {
                return false;
            }
            if is_committed(cell.stamp.load(Ordering::Relaxed), h)
                || self.hdr.head.0.pos.load(Ordering::Relaxed) != h
                || self.is_closed()
            {
                return true;
            }
        }
    }

    /// Claims the next message, waiting (spin, then sleep) until `deadline` when `block`.
    /// Skips the cells of producers that died mid-message.
    #[inline]
    pub(crate) fn claim(&self, me: &Slot, block: bool, deadline: Deadline) -> Result<Claimed, Fail> {
        match self.try_claim(me) {
            Claim::Msg(c) => Ok(c),
            first => self.claim_slow(me, first, block, deadline),
        }
    }

    /// `claim` after a first attempt that found no message (not repeated at once: another look
    /// at `tail` right away only steals the producers' line).
    #[cold]
    fn claim_slow(&self, me: &Slot, first: Claim, block: bool, deadline: Deadline) -> Result<Claimed, Fail> {
        let mut spinner = Spinner::new();
        let mut slice = FIRST_SLICE;
        let mut next = Some(first);
        loop {
            let attempt = next.take().unwrap_or_else(|| self.try_claim(me));
            match attempt {
                Claim::Msg(c) => return Ok(c),
                Claim::Empty => {
                    if self.is_closed() && !self.has_data() {
                        return Err(Fail::Closed);
                    }
                    if !block || deadline_passed(deadline) {
                        return Err(Fail::WouldBlock);
                    }
                    if self.spin_for_head(&mut spinner) {
                        continue;
                    }
                    // In slices: a producer killed between its commit and its notification
                    // leaves a message nobody announces.
                    let d = slice_deadline(deadline, MAX_SLICE);
                    self.hdr.not_empty.0.wait_until(d, || (self.has_data() || self.is_closed()).then_some(()));
                }
                Claim::Pending(h) => {
                    if !block {
                        if self.skip_if_producer_dead(me, h) {
                            spin_hint();
                            continue;
                        }
                        return Err(Fail::WouldBlock);
                    }
                    if deadline_passed(deadline) {
                        return Err(Fail::WouldBlock);
                    }
                    if self.spin_for_head(&mut spinner) {
                        continue;
                    }
                    // Ready once the head moved or its message is committed (a stamp of the
                    // previous lap, not yet released, is not ready either).
                    let ready_now = || {
                        let s = self.cell(h).stamp.load(Ordering::Acquire);
                        let moved = self.hdr.head.0.pos.load(Ordering::Acquire) != h;
                        (moved || is_committed(s, h)).then_some(())
                    };
                    if self.hdr.not_empty.0.wait_until(slice_deadline(deadline, slice), ready_now).is_none() {
                        slice = (slice * 2).min(MAX_SLICE);
                        self.skip_if_producer_dead(me, h);
                    }
                }
            }
        }
    }
}
