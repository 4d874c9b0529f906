//! The lock word's protocol: a futex word holding the owner's thread id and a WAITERS bit.
//!
//! ```text
//! state                 word
//! free                  0
//! held                  TID
//! held, may have sleepers   TID | WAITERS
//!
//! try_acquire:  CAS 0 -> TID                          (Acquire)
//! contended:    w = word
//!               w == 0           -> CAS 0 -> TID|WAITERS (others may sleep: keep the bit)
//!               no WAITERS bit   -> CAS w -> w|WAITERS   (failed: look again)
//!               FUTEX_WAIT(word, w|WAITERS)           (returns at once if the word moved)
//! release:      swap -> 0 (Release); FUTEX_WAKE(1) if the old word had WAITERS
//! take over:    CAS w -> TID | (w & WAITERS), only from the exact word that named the dead owner
//! ```
//!
//! A sleeper always set WAITERS in the word it sleeps on, and a release that swaps that word out
//! sees the bit and wakes one sleeper; the woken one re-takes the lock with WAITERS set, so its
//! own release wakes the next. A waiter that set the bit but is not asleep yet finds the word
//! changed and does not sleep. A takeover CAS compares the whole word, so it cannot succeed
//! against a release or another takeover that got there first.
//!
//! Who is dead, and when to ask, is decided by the caller (`sync::mutex`, which reads /proc);
//! this file is also compiled by `tests/loom_lock.rs` over loom's atomics: it may only use what
//! `super::shim` provides.

use super::shim::{AtomicU32, Ordering, futex_wake};

/// Owner-TID bits of the lock word (kernel thread ids are below 2^22).
pub(crate) const TID_MASK: u32 = 0x3fff_ffff;
/// Set while some locker sleeps (or may sleep) on the word.
pub(crate) const WAITERS: u32 = 0x8000_0000;

/// What a contended locker does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The lock is ours.
    Acquired,
    /// Sleep on the word while it holds this value (WAITERS set), then step again.
    Sleep(u32),
    /// The word moved under us: step again at once.
    Again,
}

/// Takes a free lock for `tid` without waiting.
#[inline(always)]
pub(crate) fn try_acquire(word: &AtomicU32, tid: u32) -> bool {
    word.compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed).is_ok()
}

/// One round of a contended acquisition by `tid`.
pub(crate) fn contended_step(word: &AtomicU32, tid: u32) -> Step {
    let w = word.load(Ordering::Relaxed);
    if w == 0 {
        // Others may sleep too: keep the WAITERS bit so our release wakes one of them.
        return match word.compare_exchange(0, tid | WAITERS, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Step::Acquired,
            Err(_) => Step::Again,
        };
    }
    if w & WAITERS == 0 && word.compare_exchange(w, w | WAITERS, Ordering::Relaxed, Ordering::Relaxed).is_err() {
        return Step::Again;
    }
    Step::Sleep(w | WAITERS)
}

/// Takes over a lock whose word was `w` when its owner was found dead; false if the word moved
/// meanwhile (released, or taken over by someone else).
pub(crate) fn take_over(word: &AtomicU32, w: u32, tid: u32) -> bool {
    w & TID_MASK != 0 && word.compare_exchange(w, tid | (w & WAITERS), Ordering::Acquire, Ordering::Relaxed).is_ok()
}

/// Releases a lock the caller holds; wakes one sleeper if any may sleep.
#[inline(always)]
pub(crate) fn release(word: &AtomicU32) {
    if word.swap(0, Ordering::Release) & WAITERS != 0 {
        futex_wake(word, 1);
    }
}
