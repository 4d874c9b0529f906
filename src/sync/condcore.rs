//! The condition-variable protocol: notify(n) wakes exactly min(n, waiting) waiters.
//!
//! Shared state: `seq` (a 32-bit futex word, bumped by every notify that finds waiters) and
//! `counts`, one 64-bit word `{ waiting: low 32 bits, tokens: high 32 bits }`. Every change of
//! `counts` and `seq` happens while the caller holds the condition's lock; only the sleep itself
//! happens without it. `counts` is always written with one store, so a lock holder killed between
//! two instructions leaves it consistent.
//!
//! ```text
//! waiter (lock held)                     notifier (lock held)
//! waiting += 1; generation = key = seq          k = min(n, waiting); if k == 0: return (no syscall)
//! loop:                                  waiting -= k; tokens += k   (one store)
//!   unlock                               seq += 1
//!   FUTEX_WAIT(seq, key) until seq != key, FUTEX_WAKE(seq, all)
//!     the deadline, or abort()
//!   relock
//!   if tokens > 0 and seq != generation: tokens -= 1, return notified
//!   if expired: waiting -= 1, return timed out
//!   key = seq
//! ```
//!
//! A waiter reads its key under the lock and a notifier bumps `seq` under the lock, so a notify
//! that comes after the waiter unlocked always finds it asleep or makes its FUTEX_WAIT return at
//! once: no lost wake-up. Tokens are only taken by waiters registered before the notify that
//! issued them (`seq != generation`), and each notify issues at most as many as there are such waiters,
//! so exactly min(n, waiting) waiters return notified; the others sleep again. A waiter that
//! times out takes an available token if it may (it was notified) so no token is stranded.
//!
//! **Cost of a notify: every sleeper wakes.** The futex cannot choose *which* sleepers to wake,
//! and a sleeper registered after the notify (one that may not take its token) could be woken
//! instead of an eligible one, stranding the token. So `notify(n)` issues `k = min(n, waiting)`
//! tokens but wakes *all* sleepers (FUTEX_WAKE with `u32::MAX`): each of them returns from the
//! futex, re-takes the caller's lock, and all but `k` find no token and go back to sleep. Even
//! `notify_one` therefore costs one wake-up and one lock round trip per waiting process (a
//! thundering herd), though exactly `k` return notified. Fine for the few waiters Python-style
//! code has; with many waiters, prefer a `Semaphore` or a queue, which wake only whom they need.
//!
//! This file is also compiled by `tests/loom.rs` over loom's atomics: it may only use what
//! `super::shim` provides.

use super::shim::{AtomicU32, AtomicU64, Deadline, Ordering, deadline_passed, futex_wait, futex_wake};

const WAITING: u64 = 1;
const TOKEN: u64 = 1 << 32;

/// A condition variable's shared state. `#[repr(C)]`: `seq`, a reserved word, `counts`.
#[repr(C)]
pub(crate) struct CondCore {
    seq: AtomicU32,
    _reserved: AtomicU32,
    counts: AtomicU64,
}

// The shared layout, checked at compile time (not under loom, whose atomics are bigger).
#[cfg(not(loom))]
mod layout_asserts {
    use static_assertions::const_assert_eq;
    use std::mem::{align_of, offset_of, size_of};

    use super::CondCore;

    const_assert_eq!(size_of::<CondCore>(), 16);
    const_assert_eq!(align_of::<CondCore>(), 8);
    const_assert_eq!(offset_of!(CondCore, seq), 0);
    const_assert_eq!(offset_of!(CondCore, _reserved), 4);
    const_assert_eq!(offset_of!(CondCore, counts), 8);
}

fn waiting(c: u64) -> u32 {
    c as u32
}

fn tokens(c: u64) -> u32 {
    (c >> 32) as u32
}

impl CondCore {
    /// A condition nobody waits on.
    pub(crate) fn new() -> CondCore {
        CondCore { seq: AtomicU32::new(0), _reserved: AtomicU32::new(0), counts: AtomicU64::new(0) }
    }

    /// How many waiters have not yet been notified (a snapshot).
    pub(crate) fn waiting(&self) -> u32 {
        waiting(self.counts.load(Ordering::Relaxed))
    }

    /// How many notifications were issued and not yet taken (a snapshot; for the loom model).
    #[allow(dead_code)] // read by tests/loom.rs only
    pub(crate) fn tokens(&self) -> u32 {
        tokens(self.counts.load(Ordering::Relaxed))
    }

    /// Lets up to `n` waiters return notified; returns how many will. The caller holds the lock.
    /// No syscall when nobody waits; otherwise wakes *every* sleeper, and those beyond `n` re-take
    /// the lock only to sleep again (see the module doc).
    #[inline]
    pub(crate) fn notify(&self, n: u32) -> u32 {
        let c = self.counts.load(Ordering::SeqCst);
        let k = n.min(waiting(c));
        if k == 0 {
            return 0;
        }
        self.counts.store(c - u64::from(k) * WAITING + u64::from(k) * TOKEN, Ordering::SeqCst);
        self.seq.fetch_add(1, Ordering::SeqCst);
        futex_wake(&self.seq, u32::MAX);
        k
    }

    /// Takes a token if one was issued after this waiter registered as `generation`. Lock held.
    fn take_token(&self, generation: u32) -> bool {
        let c = self.counts.load(Ordering::SeqCst);
        if tokens(c) == 0 || self.seq.load(Ordering::SeqCst) == generation {
            return false;
        }
        self.counts.store(c - TOKEN, Ordering::SeqCst);
        true
    }

    /// Leaves without a notification. Lock held.
    fn leave(&self) {
        let c = self.counts.load(Ordering::SeqCst);
        if waiting(c) > 0 {
            self.counts.store(c - WAITING, Ordering::SeqCst);
        }
    }

    /// Waits for a notify; called and returns with the lock held. True when notified, false when
    /// the deadline passed or `abort()` said to stop.
    ///
    /// `unlock` and `relock` release and re-take the caller's lock; `slice(deadline)` gives the
    /// deadline of one sleep (so `abort` is polled, e.g. for a lock holder's death); `abort` is
    /// checked after every sleep that ended without a notify.
    pub(crate) fn wait(
        &self,
        deadline: Deadline,
        mut unlock: impl FnMut(),
        mut relock: impl FnMut(),
        mut slice: impl FnMut(Deadline) -> Deadline,
        mut abort: impl FnMut() -> bool,
    ) -> bool {
        let c = self.counts.load(Ordering::SeqCst);
        self.counts.store(c + WAITING, Ordering::SeqCst);
        let generation = self.seq.load(Ordering::SeqCst);
        let mut key = generation;
        loop {
            unlock();
            let mut expired = false;
            loop {
                futex_wait(&self.seq, key, slice(deadline));
                if self.seq.load(Ordering::SeqCst) != key {
                    break;
                }
                if deadline_passed(deadline) || abort() {
                    expired = true;
                    break;
                }
            }
            relock();
            if self.take_token(generation) {
                return true;
            }
            if expired {
                self.leave();
                return false;
            }
            key = self.seq.load(Ordering::SeqCst);
        }
    }
}
