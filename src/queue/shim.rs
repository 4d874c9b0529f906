//! What the ring protocol ([`ring`](super::ring)) is written against: atomics, deadlines and a
//! spin hint. In the library they are std's; `tests/loom_ring.rs` includes the same `ring.rs`
//! over a shim of loom atomics, so the code that ships is the code that is model-checked.

use std::time::Duration;

pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub(crate) use crate::sys::clock::Deadline;
use crate::sys::clock::MonoTime;

/// Whether `deadline` has passed.
#[inline]
pub(crate) fn deadline_passed(deadline: Deadline) -> bool {
    deadline.is_some_and(|d| d.has_passed())
}

/// The earlier of `deadline` and `now + slice`: how long to sleep before re-checking whether a
/// stalled peer died.
#[inline]
pub(crate) fn slice_deadline(deadline: Deadline, slice: Duration) -> Deadline {
    let s = MonoTime::after(slice);
    Some(deadline.map_or(s, |d| d.min(s)))
}

/// One step of a bounded busy-wait.
#[inline]
pub(crate) fn spin_hint() {
    std::hint::spin_loop();
}

/// How long to busy-wait before sleeping: about two microseconds (a futex sleep and wake cost
/// several; longer spins steal the core the other side needs when processes outnumber cores).
const SPIN_NANOS: u64 = 2_000;

/// A bounded busy-wait: [`spin`](Spinner::spin) pauses once and says whether to keep spinning.
pub(crate) struct Spinner {
    start: Option<MonoTime>,
    n: u32,
}

impl Spinner {
    /// A fresh budget (the clock is read only once spinning starts).
    #[inline]
    pub(crate) fn new() -> Spinner {
        Spinner { start: None, n: 0 }
    }

    /// Pauses once; false once the budget is spent (then the caller sleeps).
    #[inline]
    pub(crate) fn spin(&mut self) -> bool {
        self.n += 1;
        if self.n % 16 == 1 {
            let now = MonoTime::now();
            let start = *self.start.get_or_insert(now);
            if now.as_nanos().saturating_sub(start.as_nanos()) > SPIN_NANOS {
                return false;
            }
        }
        std::hint::spin_loop();
        true
    }
}
