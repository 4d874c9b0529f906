//! Shared (not `FUTEX_PRIVATE_FLAG`) futex wait and wake on 32-bit words in shared memory.
//!
//! Shared futexes are keyed by the physical page, so a waiter in one process is woken by a
//! `wake` from any other process that maps the same memory.

use std::sync::atomic::AtomicU32;

use nix::libc;

use super::clock::Deadline;

/// Why [`wait`] returned. Every outcome may be spurious; callers re-check their condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// Woken by a `wake`, a signal, or a spurious wake-up.
    Woken,
    /// The word did not hold `expected` when the kernel looked.
    Changed,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, until woken or the monotonic `deadline` passes.
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> WaitOutcome {
    let ts = deadline.map(|d| d.to_timespec());
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned AtomicU32 for the duration of the call; the timespec
    // pointer is null or points at `ts`, which outlives the call. FUTEX_WAIT_BITSET takes an
    // absolute CLOCK_MONOTONIC deadline, which is what `Deadline` holds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    if r == 0 {
        return WaitOutcome::Woken;
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::EAGAIN => WaitOutcome::Changed,
        nix::errno::Errno::ETIMEDOUT => WaitOutcome::TimedOut,
        // EINTR and anything unexpected: let the caller re-check and wait again.
        _ => WaitOutcome::Woken,
    }
}

/// Wakes up to `n` waiters sleeping on `word`; returns how many were woken.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    // SAFETY: `word` is a live, aligned AtomicU32; FUTEX_WAKE only reads its address.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    usize::try_from(r).unwrap_or(0)
}
