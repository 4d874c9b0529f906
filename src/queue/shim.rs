//! What the ring protocol ([`ring`](super::ring)) is written against: atomics, deadlines and a
//! spin hint. In the library they are std's; `tests/loom_ring.rs` includes the same `ring.rs`
//! over a shim of loom atomics, so the code that ships is the code that is model-checked.

pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::sys::clock::MonoTime;
pub(crate) use crate::sys::clock::{Deadline, deadline_passed, slice_deadline};

/// One step of a bounded busy-wait.
#[inline]
pub(crate) fn spin_hint() {
    std::hint::spin_loop();
}

/// Busy-wait budget bounds. A futex sleep and wake costs 5–30 µs on this class of machine, so a
/// peer that answers within tens of microseconds (a ping-pong over a Pipe, a consumer draining a
/// queue) is met faster by spinning; but spinning steals the core the other side needs when
/// processes outnumber cores, and burns it when the peer is idle. So the budget adapts per
/// thread: it starts high (a thread's first waits find out whether its peer answers fast), doubles
/// (up to `MAX_SPIN_NANOS`) each time a wait ended while spinning and halves (down to
/// `MIN_SPIN_NANOS`, about the 1–2 µs DESIGN.md recommends) each time it ran out.
const MIN_SPIN_NANOS: u64 = 2_000;
const MAX_SPIN_NANOS: u64 = 50_000;

thread_local! {
    static SPIN_BUDGET: std::cell::Cell<u64> = const { std::cell::Cell::new(MAX_SPIN_NANOS) };
}

/// Whether spinning can help at all: with one CPU the peer cannot run while we spin.
fn spinning_helps() -> bool {
    static MULTI: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    match MULTI.load(Ordering::Relaxed) {
        0 => {
            let multi = crate::sys::proc::cpus_online() > 1;
            MULTI.store(if multi { 2 } else { 1 }, Ordering::Relaxed);
            multi
        }
        v => v == 2,
    }
}

/// A bounded, adaptive busy-wait: [`spin`](Spinner::spin) pauses once and says whether to keep
/// spinning; dropping it tells the thread's budget whether the spin paid off.
pub(crate) struct Spinner {
    start: Option<MonoTime>,
    n: u32,
    budget: u64,
    exhausted: bool,
}

impl Spinner {
    /// A fresh spin with this thread's current budget (the budget and the clock are read only
    /// once spinning starts).
    #[inline]
    pub(crate) fn new() -> Spinner {
        Spinner { start: None, n: 0, budget: 0, exhausted: false }
    }

    /// Pauses once; false once the budget is spent (then the caller sleeps).
    #[inline]
    pub(crate) fn spin(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        self.n += 1;
        if self.n % 16 == 1 {
            if self.n == 1 {
                // Read only now: most operations never wait, and pay no thread-local access.
                self.budget = SPIN_BUDGET.get();
            }
            let now = MonoTime::now();
            let start = *self.start.get_or_insert(now);
            if !spinning_helps() || now.as_nanos().saturating_sub(start.as_nanos()) > self.budget {
                self.exhausted = true;
                return false;
            }
        }
        std::hint::spin_loop();
        true
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if self.n == 0 {
            return; // never had to wait
        }
        let next =
            if self.exhausted { (self.budget / 2).max(MIN_SPIN_NANOS) } else { (self.budget * 2).min(MAX_SPIN_NANOS) };
        SPIN_BUDGET.set(next);
    }
}
