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
