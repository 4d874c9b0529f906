//! Shared (not `FUTEX_PRIVATE_FLAG`) futex wait and wake on 32-bit words in shared memory.
//!
//! Shared futexes are keyed by the physical page, so a waiter in one process is woken by a
//! `wake` from any other process that maps the same memory.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

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

/// The most words one [`wait_any`] call sleeps on (`FUTEX_WAITV_MAX`).
pub(crate) const WAITV_MAX: usize = 128;

/// `futex_waitv(2)` is not available (kernel before 5.16, or a seccomp filter refused it): sleep
/// on one word at a time instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unsupported;

/// One entry of `futex_waitv(2)`'s array: `struct futex_waitv` of `<linux/futex.h>`. Not shared
/// memory: the kernel reads it during the call.
#[repr(C)]
#[derive(Clone, Copy)]
struct FutexWaitv {
    /// The value to sleep on, zero-extended (the kernel rejects bits above the futex's size).
    val: u64,
    /// The futex word's address.
    uaddr: u64,
    /// `FUTEX2_SIZE_U32`, without `FUTEX2_PRIVATE`: the words live in shared memory.
    flags: u32,
    reserved: u32,
}

static_assertions::const_assert_eq!(std::mem::size_of::<FutexWaitv>(), 24);
static_assertions::const_assert_eq!(std::mem::offset_of!(FutexWaitv, uaddr), 8);
static_assertions::const_assert_eq!(std::mem::offset_of!(FutexWaitv, flags), 16);

/// `FUTEX2_SIZE_U32` (`FUTEX_32`): a 32-bit futex word.
const FUTEX2_SIZE_U32: u32 = 2;

/// Whether `futex_waitv` is known to be missing: 0 not known, 1 missing. Forked children inherit
/// the answer along with the kernel.
static WAITV_MISSING: AtomicU8 = AtomicU8::new(0);

/// Sleeps until any of `words` is woken, or any of them does not hold its expected value when
/// the kernel looks, or the monotonic `deadline` passes: `futex_waitv(2)` on shared futexes.
///
/// At most [`WAITV_MAX`] words (the rest are ignored; an empty slice returns `Changed` at once).
/// Every outcome may be spurious; callers re-check their conditions. `Err(Unsupported)` when the
/// kernel lacks the call (remembered: later calls return it without a syscall).
pub(crate) fn wait_any(words: &[(&AtomicU32, u32)], deadline: Deadline) -> Result<WaitOutcome, Unsupported> {
    if words.is_empty() {
        return Ok(WaitOutcome::Changed);
    }
    if WAITV_MISSING.load(Ordering::Relaxed) != 0 {
        return Err(Unsupported);
    }
    let n = words.len().min(WAITV_MAX);
    let mut v = [FutexWaitv { val: 0, uaddr: 0, flags: 0, reserved: 0 }; WAITV_MAX];
    for (slot, (word, expected)) in v.iter_mut().zip(&words[..n]) {
        *slot = FutexWaitv {
            val: u64::from(*expected),
            uaddr: word.as_ptr() as usize as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        };
    }
    let ts = deadline.map(|d| d.to_timespec());
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `v[..n]` are valid entries whose addresses are live, aligned AtomicU32s borrowed
    // for the duration of the call; `n` is between 1 and FUTEX_WAITV_MAX; the flags argument
    // must be 0; the timespec pointer is null or points at `ts`, which outlives the call, and is
    // an absolute time on the clock passed last (CLOCK_MONOTONIC, what `Deadline` holds).
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            v.as_ptr(),
            n as libc::c_uint,
            0 as libc::c_uint,
            ts_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return Ok(WaitOutcome::Woken);
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::EAGAIN => Ok(WaitOutcome::Changed),
        nix::errno::Errno::ETIMEDOUT => Ok(WaitOutcome::TimedOut),
        nix::errno::Errno::EINTR => Ok(WaitOutcome::Woken),
        // ENOSYS: an older kernel. EPERM: a seccomp filter. EINVAL: a kernel that rejects these
        // arguments, which are valid for every kernel that has the call. Falling back to the
        // caller's one-word sleeps is always correct, so do not try again.
        nix::errno::Errno::ENOSYS | nix::errno::Errno::EPERM | nix::errno::Errno::EINVAL => {
            WAITV_MISSING.store(1, Ordering::Relaxed);
            Err(Unsupported)
        }
        // Anything unexpected: let the caller re-check and wait again.
        _ => Ok(WaitOutcome::Woken),
    }
}

/// False once [`wait_any`] found `futex_waitv(2)` missing; true before anyone tried.
pub(crate) fn waitv_available() -> bool {
    WAITV_MISSING.load(Ordering::Relaxed) == 0
}
