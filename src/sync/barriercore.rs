//! The barrier protocol: one 64-bit state word changed only by CAS, plus an eventcount.
//!
//! ```text
//! state = generation (23 bits) | history (8 bits) | broken (1 bit) | count (32 bits)
//! ```
//!
//! - `count`: parties arrived in generation `generation`; `count == parties` while the last arrival
//!   runs its action.
//! - `broken`: the generation was broken (a timeout, `abort`, a failed action); every waiter of
//!   it and every later arrival fails until `reset`.
//! - `history`: how the last eight generations ended, newest in bit 0 (1 = reset while parties
//!   waited), so a waiter that wakes after its generation ended knows whether it passed.
//!
//! | transition            | who                       | new state                               |
//! |-----------------------|---------------------------|-----------------------------------------|
//! | arrive                | any party, not broken     | count + 1                               |
//! | release               | last arrival, after action| generation + 1, history << 1, count 0          |
//! | break                 | timeout, abort            | broken (same generation, count)                |
//! | reset, nobody inside  | `reset`                   | not broken                              |
//! | reset, parties inside | `reset`                   | generation + 1, history << 1 \| 1, count 0     |
//!
//! Every transition is one CAS, so a party killed anywhere leaves a consistent word; waiters
//! block on the eventcount and every transition that matters to them notifies it.
//!
//! This file is also compiled by `tests/loom.rs` over loom's atomics: it may only use what
//! `super::shim` provides.

use super::eventcount::EventCount;
use super::shim::{AtomicU32, AtomicU64, Deadline, Ordering};

const COUNT_MASK: u64 = 0xffff_ffff;
const BROKEN: u64 = 1 << 32;
const HIST_SHIFT: u32 = 33;
const HIST_MASK: u64 = 0xff;
const GEN_SHIFT: u32 = 41;
const GEN_MASK: u64 = (1 << 23) - 1;

fn count(s: u64) -> u32 {
    (s & COUNT_MASK) as u32
}

fn is_broken(s: u64) -> bool {
    s & BROKEN != 0
}

fn gen_of(s: u64) -> u32 {
    ((s >> GEN_SHIFT) & GEN_MASK) as u32
}

fn advance(s: u64, was_reset: bool) -> u64 {
    let next = (u64::from(gen_of(s)) + 1) & GEN_MASK;
    let hist = ((((s >> HIST_SHIFT) & HIST_MASK) << 1) | u64::from(was_reset)) & HIST_MASK;
    (next << GEN_SHIFT) | (hist << HIST_SHIFT)
}

/// How generation `generation` ended, seen from state `s`: `None` while it runs, `Some(true)` if it was
/// released normally, `Some(false)` if it was broken or reset.
fn outcome(s: u64, generation: u32) -> Option<bool> {
    let d = (u64::from(gen_of(s)).wrapping_sub(u64::from(generation))) & GEN_MASK;
    if d == 0 {
        return if is_broken(s) { Some(false) } else { None };
    }
    if d > 8 {
        // Woken more than eight generations late: the history no longer covers it; those
        // generations could only start after ours was released or reset, and a reset is rare.
        return Some(true);
    }
    Some((s >> (HIST_SHIFT + (d as u32 - 1))) & 1 == 0)
}

/// The barrier is broken (Python's `BrokenBarrierError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Broken;

/// What `arrive` made of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The last party of generation `generation`: run the action, then [`BarrierCore::release`].
    Last {
        /// The generation.
        generation: u32,
    },
    /// An earlier party: wait with [`BarrierCore::await_release`].
    Waiter {
        /// The generation.
        generation: u32,
        /// This party's index, `0..parties-1`.
        index: u32,
    },
}

/// A barrier's shared state. `#[repr(C)]`: the state word, the eventcount, `parties`.
#[repr(C)]
pub(crate) struct BarrierCore {
    state: AtomicU64,
    ec: EventCount,
    parties: AtomicU32,
    _reserved: AtomicU32,
}

// The shared layout, checked at compile time (not under loom, whose atomics are bigger).
#[cfg(not(loom))]
mod layout_asserts {
    use static_assertions::const_assert_eq;
    use std::mem::{align_of, offset_of, size_of};

    use super::BarrierCore;

    const_assert_eq!(size_of::<BarrierCore>(), 24);
    const_assert_eq!(align_of::<BarrierCore>(), 8);
    const_assert_eq!(offset_of!(BarrierCore, state), 0);
    const_assert_eq!(offset_of!(BarrierCore, ec), 8);
    const_assert_eq!(offset_of!(BarrierCore, parties), 16);
    const_assert_eq!(offset_of!(BarrierCore, _reserved), 20);
}

impl BarrierCore {
    /// A barrier for `parties` (at least 1).
    pub(crate) fn new(parties: u32) -> BarrierCore {
        BarrierCore {
            state: AtomicU64::new(0),
            ec: EventCount::new(),
            parties: AtomicU32::new(parties),
            _reserved: AtomicU32::new(0),
        }
    }

    /// The number of parties.
    pub(crate) fn parties(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }

    /// Parties waiting in the current generation (0 when broken).
    pub(crate) fn n_waiting(&self) -> u32 {
        let s = self.state.load(Ordering::SeqCst);
        if is_broken(s) { 0 } else { count(s).min(self.parties().saturating_sub(1)) }
    }

    /// Whether the barrier is broken.
    pub(crate) fn is_broken(&self) -> bool {
        is_broken(self.state.load(Ordering::SeqCst))
    }

    /// Joins the current generation. If the last party of the previous one is still running
    /// its action, waits (until `deadline`) for it first.
    ///
    /// # Errors
    /// [`Broken`] if the barrier is broken, or (breaking it) if the deadline passed meanwhile.
    pub(crate) fn arrive(&self, deadline: Deadline) -> Result<Arrival, Broken> {
        let parties = self.parties();
        loop {
            let s = self.state.load(Ordering::SeqCst);
            if is_broken(s) {
                return Err(Broken);
            }
            let c = count(s);
            if c >= parties {
                // The previous generation is being released: wait for it to end.
                let generation = gen_of(s);
                let ended = self.ec.wait_until(deadline, || {
                    let now = self.state.load(Ordering::SeqCst);
                    (gen_of(now) != generation || is_broken(now)).then_some(())
                });
                if ended.is_none() {
                    self.break_gen(generation);
                    return Err(Broken);
                }
                continue;
            }
            if self.state.compare_exchange(s, s + 1, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                let generation = gen_of(s);
                return Ok(if c + 1 == parties {
                    Arrival::Last { generation }
                } else {
                    Arrival::Waiter { generation, index: c }
                });
            }
        }
    }

    /// Waits until generation `generation` is released; on timeout breaks the barrier.
    ///
    /// # Errors
    /// [`Broken`] if the generation was broken or reset, or the deadline passed.
    pub(crate) fn await_release(&self, generation: u32, deadline: Deadline) -> Result<(), Broken> {
        let r = self.ec.wait_until(deadline, || outcome(self.state.load(Ordering::SeqCst), generation));
        match r {
            Some(true) => Ok(()),
            Some(false) => Err(Broken),
            None => {
                self.break_gen(generation);
                // Released in the meantime after all? Then we passed.
                match outcome(self.state.load(Ordering::SeqCst), generation) {
                    Some(true) => Ok(()),
                    _ => Err(Broken),
                }
            }
        }
    }

    /// Called by the last party after its action: starts the next generation, wakes the others.
    ///
    /// # Errors
    /// [`Broken`] if the generation was broken or reset while the action ran.
    pub(crate) fn release(&self, generation: u32) -> Result<(), Broken> {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            if gen_of(s) != generation || is_broken(s) {
                return Err(Broken);
            }
            match self.state.compare_exchange(s, advance(s, false), Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.ec.notify_all();
        Ok(())
    }

    /// Breaks generation `generation` if it is still the current one (a timeout, a failed action).
    pub(crate) fn break_gen(&self, generation: u32) {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            if gen_of(s) != generation || is_broken(s) {
                return;
            }
            match self.state.compare_exchange(s, s | BROKEN, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.ec.notify_all();
    }

    /// Breaks the barrier: current and future waiters fail until `reset`.
    pub(crate) fn abort(&self) {
        self.state.fetch_or(BROKEN, Ordering::SeqCst);
        self.ec.notify_all();
    }

    /// Back to an empty, unbroken barrier; parties waiting now fail.
    pub(crate) fn reset(&self) {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            let new = if count(s) == 0 { s & !BROKEN } else { advance(s, true) };
            if new == s {
                return;
            }
            match self.state.compare_exchange(s, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.ec.notify_all();
    }
}
