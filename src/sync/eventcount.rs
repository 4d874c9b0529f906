//! Eventcounts: blocking without lost wake-ups, and without a syscall when nobody sleeps.
//!
//! Shared state: one 32-bit futex word `seq`. Bit 0 (`SLEEPERS`) says "someone may be asleep on
//! the current value"; bits 1.. count notifications. The second word is reserved.
//!
//! ```text
//! waiter                                      notifier
//! key = seq                       (SeqCst)    publish the change (e.g. store the flag)
//! if !SLEEPERS: CAS key -> key|SLEEPERS       fence(SeqCst); if !(seq & SLEEPERS): done, no RMW
//!   (failed: seq moved, start over)           old = seq; seq = (old + 2) & !SLEEPERS  (SeqCst CAS)
//! if condition holds: done                    if old & SLEEPERS: FUTEX_WAKE(all)
//! FUTEX_WAIT(seq, key|SLEEPERS, deadline)
//! re-check; sleep again from the top
//! ```
//!
//! The waiter's announcing CAS and the notifier's fence are ordered in the single SeqCst order:
//! if the fence comes first, the waiter's condition check (after its CAS) sees the published
//! change; if the CAS comes first, the notifier's load after its fence sees SLEEPERS and wakes
//! everyone asleep (a waiter not yet asleep finds seq changed and does not sleep). With no
//! sleeper a notification is a fence and a load of a line nobody writes: no cache-line ping-pong
//! between a producer and a consumer that both notify, and no syscall. The notifier clears
//! SLEEPERS in the same atomic step, so further notifications make no syscall until some waiter
//! announces again: a burst of puts into a queue whose consumer was just woken costs one
//! FUTEX_WAKE, not one per put. Every notification wakes all sleepers (they re-check and go back
//! to sleep if it was not for them).
//!
//! This file is also compiled by `tests/loom.rs` and `tests/loom_ring.rs` over loom's atomics: it
//! may only use what `super::shim` provides.

use super::shim::{AtomicU32, Deadline, Ordering, deadline_passed, fence, futex_wait, futex_wake};

/// Bit 0 of `seq`: someone may sleep on its current value.
const SLEEPERS: u32 = 1;
/// What one notification adds to `seq` (bit 0 is the flag).
const STEP: u32 = 2;

/// An eventcount in shared memory. `#[repr(C)]`: two `u32` words.
#[repr(C)]
pub(crate) struct EventCount {
    seq: AtomicU32,
    reserved: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::const_assert_eq!(std::mem::size_of::<EventCount>(), 8);
#[cfg(not(loom))]
static_assertions::const_assert_eq!(std::mem::offset_of!(EventCount, seq), 0);

impl EventCount {
    /// A fresh eventcount (for initialising shared memory in place).
    pub(crate) fn new() -> EventCount {
        EventCount { seq: AtomicU32::new(0), reserved: AtomicU32::new(0) }
    }

    /// Blocks until `ready()` returns `Some`, or the deadline passes (`None`).
    ///
    /// `ready` is called before any sleep and after every wake-up; it must read the state the
    /// notifier publishes before it calls [`notify_all`](Self::notify_all).
    #[inline]
    pub(crate) fn wait_until<R>(&self, deadline: Deadline, mut ready: impl FnMut() -> Option<R>) -> Option<R> {
        if let Some(r) = ready() {
            return Some(r);
        }
        self.wait_slow(deadline, &mut ready)
    }

    #[cold]
    fn wait_slow<R>(&self, deadline: Deadline, ready: &mut dyn FnMut() -> Option<R>) -> Option<R> {
        loop {
            let key = self.seq.load(Ordering::SeqCst);
            if key & SLEEPERS == 0
                && self.seq.compare_exchange(key, key | SLEEPERS, Ordering::SeqCst, Ordering::SeqCst).is_err()
            {
                // A notification (or another waiter) moved seq: look at the condition again.
                if let Some(r) = ready() {
                    return Some(r);
                }
                continue;
            }
            if let Some(r) = ready() {
                return Some(r);
            }
            let in_time = futex_wait(&self.seq, key | SLEEPERS, deadline);
            if let Some(r) = ready() {
                return Some(r);
            }
            if !in_time || deadline_passed(deadline) {
                return None;
            }
        }
    }

    /// Wakes every sleeper, after the caller published the change they wait for. No syscall
    /// when nobody announced a sleep since the last notification.
    #[inline]
    pub(crate) fn notify_all(&self) {
        fence(Ordering::SeqCst);
        if self.seq.load(Ordering::Relaxed) & SLEEPERS == 0 {
            return;
        }
        let mut old = self.seq.load(Ordering::SeqCst);
        loop {
            let new = old.wrapping_add(STEP) & !SLEEPERS;
            match self.seq.compare_exchange_weak(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(actual) => old = actual,
            }
        }
        if old & SLEEPERS != 0 {
            futex_wake(&self.seq, u32::MAX);
        }
    }
}
