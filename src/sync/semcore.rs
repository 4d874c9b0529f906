//! The counting-semaphore protocol: a futex counter plus a waiter count.
//!
//! Shared state: `{ count, waiters, max }`, three 32-bit words. `count` is the futex word.
//!
//! ```text
//! acquire                                   release
//! CAS count: c -> c-1 if c > 0  (fast path) CAS count: c -> c+1 if c < max, else error
//! waiters += 1                  (SeqCst)    if waiters != 0: FUTEX_WAKE(count, 1)
//! loop: CAS as above, else FUTEX_WAIT(count, 0, deadline)
//! waiters -= 1
//! ```
//!
//! No lost wake-up: in the SeqCst order, either the releaser's `waiters` load sees the waiter
//! (and wakes one sleeper; a waiter not yet asleep finds `count != 0` in the kernel's check and
//! does not sleep), or the waiter's increment comes later and its next CAS sees the new count.
//! A sleeper woken whose unit was taken by a barging acquirer sleeps again: the unit went to
//! somebody, and the next release wakes again. A release with no waiter makes no syscall.
//!
//! This file is also compiled by `tests/loom.rs` over loom's atomics: it may only use what
//! `super::shim` provides.

use super::shim::{AtomicU32, Deadline, Ordering, deadline_passed, futex_wait, futex_wake};

/// How many times `acquire` re-checks a zero count before sleeping (about 1 µs).
#[cfg(not(loom))]
const SPIN_LIMIT: u32 = 64;

/// A counting semaphore in shared memory. `#[repr(C)]`: three `u32` words and a reserved one.
#[repr(C)]
pub(crate) struct SemCore {
    count: AtomicU32,
    waiters: AtomicU32,
    max: AtomicU32,
    _reserved: AtomicU32,
}

// The shared layout, checked at compile time (not under loom, whose atomics are bigger).
#[cfg(not(loom))]
mod layout_asserts {
    use static_assertions::const_assert_eq;
    use std::mem::{align_of, offset_of, size_of};

    use super::SemCore;

    const_assert_eq!(size_of::<SemCore>(), 16);
    const_assert_eq!(align_of::<SemCore>(), 4);
    const_assert_eq!(offset_of!(SemCore, count), 0);
    const_assert_eq!(offset_of!(SemCore, waiters), 4);
    const_assert_eq!(offset_of!(SemCore, max), 8);
    const_assert_eq!(offset_of!(SemCore, _reserved), 12);
}

/// A release that would lift the count above its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

impl SemCore {
    /// A semaphore holding `value`, which `release` may raise up to `max`.
    pub(crate) fn new(value: u32, max: u32) -> SemCore {
        SemCore {
            count: AtomicU32::new(value),
            waiters: AtomicU32::new(0),
            max: AtomicU32::new(max),
            _reserved: AtomicU32::new(0),
        }
    }

    /// The current count (a snapshot).
    pub(crate) fn value(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// The largest count `release` accepts.
    pub(crate) fn max(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }

    /// How many processes are blocked or about to block in `acquire` (a snapshot).
    pub(crate) fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::Relaxed)
    }

    /// Takes one unit if the count is above zero.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut c = self.count.load(Ordering::Relaxed);
        loop {
            if c == 0 {
                return false;
            }
            match self.count.compare_exchange_weak(c, c - 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
    }

    /// Takes one unit, sleeping while the count is zero, until the deadline; false on timeout.
    #[inline]
    pub(crate) fn acquire_until(&self, deadline: Deadline) -> bool {
        self.try_acquire() || self.acquire_slow(deadline)
    }

    #[cold]
    fn acquire_slow(&self, deadline: Deadline) -> bool {
        // Not under loom: the spin adds nothing to the model but states.
        #[cfg(not(loom))]
        for _ in 0..SPIN_LIMIT {
            std::hint::spin_loop();
            if self.count.load(Ordering::Relaxed) != 0 && self.try_acquire() {
                return true;
            }
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let got = loop {
            // SeqCst load: ordered after our `waiters` increment (see the module docs).
            if self.count.load(Ordering::SeqCst) != 0 && self.try_acquire() {
                break true;
            }
            if deadline_passed(deadline) {
                break false;
            }
            // A timeout, a wake or a changed count: loop and re-check the count first, so a
            // wake-up that raced with our deadline is never thrown away.
            futex_wait(&self.count, 0, deadline);
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        got
    }

    /// Returns one unit and wakes one sleeper if anyone waits.
    ///
    /// # Errors
    /// [`Overflow`] when the count is already at its maximum (nothing changes).
    #[inline]
    pub(crate) fn release(&self) -> Result<(), Overflow> {
        let max = self.max.load(Ordering::Relaxed);
        let mut c = self.count.load(Ordering::Relaxed);
        loop {
            if c >= max {
                return Err(Overflow);
            }
            match self.count.compare_exchange_weak(c, c + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        if self.waiters.load(Ordering::SeqCst) != 0 {
            futex_wake(&self.count, 1);
        }
        Ok(())
    }
}
