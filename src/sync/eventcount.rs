//! Eventcounts: blocking without lost wake-ups, and without a syscall when nobody waits.
//!
//! Shared state: `{ seq, waiters }`, two 32-bit words. `seq` is the futex word.
//!
//! ```text
//! waiter                                  notifier
//! waiters += 1            (SeqCst)        publish the change (e.g. store the flag)
//! key = seq               (SeqCst)        seq += 1             (SeqCst)
//! if condition holds: waiters -= 1, done  if waiters != 0: FUTEX_WAKE(seq)
//! FUTEX_WAIT(seq, key, deadline)
//! waiters -= 1, re-check
//! ```
//!
//! In the single total order of SeqCst operations either the notifier's `waiters` load sees the
//! waiter (and wakes it; a waiter not yet asleep finds `seq != key` and does not sleep), or the
//! waiter's increment comes later, so its `key` load already sees the new `seq` and its condition
//! check sees the published change. Either way no wake-up is lost, and a notifier with no waiter
//! makes no syscall.
//!
//! This file is also compiled by `tests/loom.rs` over loom's atomics: it may only use what
//! `super::shim` provides.

use super::shim::{AtomicU32, Deadline, Ordering, deadline_passed, futex_wait, futex_wake};

/// An eventcount in shared memory. `#[repr(C)]`: two `u32` words.
#[repr(C)]
pub(crate) struct EventCount {
    seq: AtomicU32,
    waiters: AtomicU32,
}

impl EventCount {
    /// A fresh eventcount (for initialising shared memory in place).
    pub(crate) fn new() -> EventCount {
        EventCount { seq: AtomicU32::new(0), waiters: AtomicU32::new(0) }
    }

    /// Blocks until `ready()` returns `Some`, or the deadline passes (`None`).
    ///
    /// `ready` is called before any sleep and after every wake-up; it must read the state the
    /// notifier publishes before it calls [`notify`](Self::notify).
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
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let key = self.seq.load(Ordering::SeqCst);
            if let Some(r) = ready() {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                return Some(r);
            }
            let in_time = futex_wait(&self.seq, key, deadline);
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if let Some(r) = ready() {
                return Some(r);
            }
            if !in_time || deadline_passed(deadline) {
                return None;
            }
        }
    }

    /// Wakes up to `n` waiters, after the caller published the change they wait for. No syscall
    /// when nobody waits.
    #[inline]
    pub(crate) fn notify(&self, n: u32) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) != 0 {
            futex_wake(&self.seq, n);
        }
    }

    /// Wakes every waiter.
    #[inline]
    pub(crate) fn notify_all(&self) {
        self.notify(u32::MAX);
    }

    /// How many processes are blocked or about to block (a snapshot).
    pub(crate) fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::Relaxed)
    }
}
