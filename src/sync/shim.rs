//! What the wait/wake protocols ([`eventcount`](super::eventcount)) are written against: atomics
//! and futex calls. In the library they are std's atomics and real futexes; the loom model in
//! `tests/loom.rs` includes the same protocol files over a shim of loom atomics, so the code that
//! ships is the code that is model-checked.

pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

pub(crate) use crate::sys::clock::{Deadline, deadline_passed};

/// Sleeps while `*word == expected` or until the deadline; returns false once the deadline passed.
#[inline]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
    crate::sys::futex::wait(word, expected, deadline) != crate::sys::futex::WaitOutcome::TimedOut
}

/// Wakes up to `n` sleepers on `word`.
#[inline]
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    crate::sys::futex::wake(word, n);
}

/// The notifier's half of an asymmetric fence (see `sys::membarrier`): a compiler fence once
/// this process is registered for sleepers' membarriers, a full fence otherwise.
#[inline]
pub(crate) fn light_fence() {
    if crate::sys::membarrier::notifier_registered() {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The sleeper's half: a membarrier on every CPU running a registered process. Returns the
/// deadline to sleep until: `deadline` itself, or, if the kernel refused the barrier to this
/// process alone (so a registered notifier's change may be missed), at most a millisecond from
/// now, so that the sleeper looks again soon.
#[inline]
pub(crate) fn heavy_barrier(deadline: Deadline) -> Deadline {
    use crate::sys::membarrier::{Barrier, global_barrier};
    match global_barrier() {
        Barrier::Done => deadline,
        // No process could register on this kernel: every notifier fences fully, as we do.
        Barrier::Unsupported => {
            fence(Ordering::SeqCst);
            deadline
        }
        Barrier::Refused => {
            fence(Ordering::SeqCst);
            crate::sys::clock::slice_deadline(deadline, std::time::Duration::from_millis(1))
        }
    }
}
