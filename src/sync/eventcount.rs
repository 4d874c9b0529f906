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
//! [`FastEventCount`] is the same protocol with an asymmetric fence, for words notified on every
//! operation of a hot path: the notifier's fence is only a compiler fence and every sleeper, after
//! announcing, runs a `membarrier(2)` that fences every CPU running a registered process
//! (`sys::membarrier`). The ordering argument is the one above with the pair of fences split
//! unevenly: either the notifier's load ran before the sleeper's barrier reached its CPU, and then
//! its publish was visible before the barrier returned, or after, and then it sees SLEEPERS.
//!
//! This file is also compiled by `tests/loom.rs` and `tests/loom_ring.rs` over loom's atomics: it
//! may only use what `super::shim` provides.

use super::shim::{
    AtomicU32, Deadline, Ordering, deadline_passed, fence, futex_wait, futex_wake, heavy_barrier, light_fence,
};

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
        self.wait_slow::<false, R>(deadline, &mut ready)
    }

    /// Wakes every sleeper, after the caller published the change they wait for. No syscall
    /// when nobody announced a sleep since the last notification.
    #[inline]
    pub(crate) fn notify_all(&self) {
        self.notify::<false>();
    }

    /// `ASYM`: notifiers order their publish before their look at `seq` with [`light_fence`]
    /// and sleepers pay for it with [`heavy_barrier`] after announcing (see [`FastEventCount`]).
    #[cold]
    fn wait_slow<const ASYM: bool, R>(&self, deadline: Deadline, ready: &mut dyn FnMut() -> Option<R>) -> Option<R> {
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
            // Every sleeper fences for itself, even when another set SLEEPERS: a notifier may
            // have looked at seq before that one's fence, and published before ours.
            // The announcing CAS is SeqCst already, which orders it before the check below in
            // the single SeqCst order; the fence says so explicitly (it costs nothing next to a
            // futex sleep) and lets loom, which models SeqCst accesses as AcqRel, check it.
            let sleep_until = if ASYM {
                heavy_barrier(deadline)
            } else {
                fence(Ordering::SeqCst);
                deadline
            };
            if let Some(r) = ready() {
                return Some(r);
            }
            let in_time = futex_wait(&self.seq, key | SLEEPERS, sleep_until);
            if let Some(r) = ready() {
                return Some(r);
            }
            if (!in_time && sleep_until == deadline) || deadline_passed(deadline) {
                return None;
            }
        }
    }

    #[inline]
    fn notify<const ASYM: bool>(&self) {
        if ASYM {
            light_fence();
        } else {
            fence(Ordering::SeqCst);
        }
        if self.seq.load(Ordering::Relaxed) & SLEEPERS == 0 {
            return;
        }
        self.wake_all();
    }

    #[cold]
    fn wake_all(&self) {
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

/// An eventcount for notifications on a hot path (a queue's every put and get): the notifier's
/// fence is [`light_fence`], a compiler fence once the process is registered for membarriers,
/// and each sleeper issues a global membarrier instead (`sys::membarrier`; about 0.6 µs on a
/// path that is about to sleep in a futex anyway). Same layout as [`EventCount`]; every notifier
/// and waiter of one word must use this type.
#[repr(transparent)]
pub(crate) struct FastEventCount(EventCount);

impl FastEventCount {
    /// A fresh eventcount (for initialising shared memory in place).
    pub(crate) fn new() -> FastEventCount {
        FastEventCount(EventCount::new())
    }

    /// As [`EventCount::wait_until`].
    #[inline]
    pub(crate) fn wait_until<R>(&self, deadline: Deadline, mut ready: impl FnMut() -> Option<R>) -> Option<R> {
        if let Some(r) = ready() {
            return Some(r);
        }
        self.0.wait_slow::<true, R>(deadline, &mut ready)
    }

    /// As [`EventCount::notify_all`], with a compiler fence in place of the full one.
    #[inline]
    pub(crate) fn notify_all(&self) {
        self.0.notify::<true>();
    }

    /// The first step of a sleep on several eventcounts at once (`wait` over many queues and
    /// connections, with `futex_waitv(2)`): announces a sleeper on this one and returns the value
    /// of [`word`](Self::word) to sleep on (`key | SLEEPERS`).
    ///
    /// A waiter on several eventcounts
    /// 1. calls `announce` on every one of them (SeqCst CASes, as in [`EventCount::wait_until`]),
    /// 2. then calls [`heavy_barrier`] once, and sleeps until the deadline it returns,
    /// 3. then checks every object's condition, and returns if one holds,
    /// 4. then sleeps on all the words at once, each expected to hold its announced key,
    /// 5. and after any wake-up checks every condition again and starts over from 1.
    ///
    /// No wake-up is lost, for the single-eventcount argument (module docs) holds for each word
    /// on its own: the one barrier comes after every announcing CAS and before every check. A
    /// notifier of object `i` publishes, runs [`light_fence`], then loads `seq_i`. Either that
    /// load ran before the barrier reached the notifier's CPU, and then the publish is visible to
    /// the checks of step 3; or after, and then it sees `seq_i` as our CAS left it or later:
    /// either SLEEPERS is set and it bumps `seq_i` and wakes everyone asleep on it, or another
    /// notifier already did. The kernel queues a `futex_waitv` sleeper on every word before it
    /// compares their values, so a waiter not yet asleep finds `seq_i` no longer equal to its key
    /// and does not sleep, and one asleep is woken. The barrier may not be skipped, even when every SLEEPERS bit was already
    /// set by other waiters: a notifier may have looked before their barriers and published
    /// before ours. One barrier serves every word because it follows all the announces; a
    /// condition found false before it proves nothing, which is why step 5 starts over from step
    /// 1 (a re-announce is one load while the bit is still set) rather than sleeping again.
    pub(crate) fn announce(&self) -> u32 {
        let seq = &self.0.seq;
        let mut key = seq.load(Ordering::SeqCst);
        loop {
            if key & SLEEPERS != 0 {
                return key;
            }
            match seq.compare_exchange(key, key | SLEEPERS, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return key | SLEEPERS,
                // A notification (or another waiter) moved seq: announce on its new value.
                Err(actual) => key = actual,
            }
        }
    }

    /// The futex word that [`announce`](Self::announce)'s key is for: sleep on it with the key
    /// after the barrier and the checks (see there), and only then.
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.0.seq
    }
}
