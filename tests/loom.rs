//! loom models of the wait/wake protocols behind Semaphore, Event, Condition and Barrier, and of
//! `wait`'s sleep on several eventcounts at once.
//!
//! The protocol files of `src/sync/` are included as they ship, over a shim of loom atomics:
//! `futex_wait` yields while the word holds the expected value (a lost wake-up becomes a spin
//! that never ends, which loom reports), `futex_wake` does nothing, and a deadline is either
//! "never" (`None`) or "already passed" (`Some(())`).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom`.
#![cfg(loom)]

use std::cell::RefCell;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;

// The protocol files say `super::shim` and `super::eventcount`: included at the crate root,
// `super` is this file, which provides both.
#[allow(dead_code)]
mod shim {
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

    /// Loom cannot model membarrier: both halves of the asymmetric fence are full fences here.
    pub(crate) fn light_fence() {
        fence(Ordering::SeqCst);
    }

    pub(crate) fn heavy_barrier(deadline: Deadline) -> Deadline {
        fence(Ordering::SeqCst);
        deadline
    }

    /// `None`: wait for ever; `Some(())`: the deadline has already passed.
    pub(crate) type Deadline = Option<()>;

    pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
        if deadline.is_some() {
            return false;
        }
        // Strict, as the kernel: no spurious return, so a lost wake-up is a spin that never
        // ends, which loom reports (a single yield would let the waiter re-check and hide it).
        while word.load(Ordering::SeqCst) == expected {
            loom::thread::yield_now();
        }
        true
    }

    pub(crate) fn futex_wake(_word: &AtomicU32, _n: u32) {}

    pub(crate) fn deadline_passed(deadline: Deadline) -> bool {
        deadline.is_some()
    }
}

#[allow(dead_code)]
#[path = "../src/sync/barriercore.rs"]
mod barriercore;
#[allow(dead_code)]
#[path = "../src/sync/condcore.rs"]
mod condcore;
#[allow(dead_code)]
#[path = "../src/sync/eventcount.rs"]
mod eventcount;
#[allow(dead_code)]
#[path = "../src/sync/semcore.rs"]
mod semcore;

use barriercore::{Arrival, BarrierCore};
use condcore::CondCore;
use eventcount::{EventCount, FastEventCount};
use semcore::SemCore;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

// ---- Semaphore --------------------------------------------------------------------------------

#[test]
fn semaphore_release_wakes_blocked_acquirer() {
    model(|| {
        let sem = Arc::new(SemCore::new(0, u32::MAX));
        let t = thread::spawn({
            let sem = sem.clone();
            move || assert!(sem.acquire_until(None))
        });
        sem.release().unwrap();
        t.join().unwrap();
        assert_eq!(sem.value(), 0);
        assert_eq!(sem.waiters(), 0);
    });
}

#[test]
fn semaphore_of_one_excludes() {
    model(|| {
        let sem = Arc::new(SemCore::new(1, 1));
        let inside = Arc::new(AtomicU32::new(0));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (sem, inside) = (sem.clone(), inside.clone());
                thread::spawn(move || {
                    assert!(sem.acquire_until(None));
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    sem.release().unwrap();
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(sem.value(), 1);
        assert!(sem.release().is_err(), "bounded at 1");
    });
}

#[test]
fn semaphore_timeout_never_loses_a_unit() {
    model(|| {
        let sem = Arc::new(SemCore::new(0, u32::MAX));
        let t = thread::spawn({
            let sem = sem.clone();
            move || sem.acquire_until(Some(()))
        });
        sem.release().unwrap();
        let got = t.join().unwrap();
        assert_eq!(sem.value(), if got { 0 } else { 1 });
    });
}

// ---- Event (flag + eventcount) ----------------------------------------------------------------

#[test]
fn event_set_wakes_waiter() {
    model(|| {
        let flag = Arc::new(AtomicU32::new(0));
        let ec = Arc::new(EventCount::new());
        let t = thread::spawn({
            let (flag, ec) = (flag.clone(), ec.clone());
            move || ec.wait_until(None, || (flag.load(Ordering::SeqCst) != 0).then_some(())).is_some()
        });
        if flag.swap(1, Ordering::SeqCst) == 0 {
            ec.notify_all();
        }
        assert!(t.join().unwrap());
    });
}

// ---- Condition --------------------------------------------------------------------------------

/// Runs `CondCore::wait` with a loom mutex as the condition's lock, held in `slot`.
fn cond_wait<'a>(
    core: &CondCore,
    lock: &'a loom::sync::Mutex<u32>,
    slot: &RefCell<Option<loom::sync::MutexGuard<'a, u32>>>,
    deadline: Option<()>,
) -> bool {
    core.wait(
        deadline,
        || drop(slot.borrow_mut().take()),
        || *slot.borrow_mut() = Some(lock.lock().unwrap()),
        |d| d,
        || false,
    )
}

#[test]
fn condition_no_lost_wakeup() {
    model(|| {
        let core = Arc::new(CondCore::new());
        let lock = Arc::new(loom::sync::Mutex::new(0u32));
        let t = thread::spawn({
            let (core, lock) = (core.clone(), lock.clone());
            move || {
                let slot = RefCell::new(Some(lock.lock().unwrap()));
                while **slot.borrow().as_ref().unwrap() == 0 {
                    cond_wait(&core, &lock, &slot, None);
                }
            }
        });
        {
            let mut g = lock.lock().unwrap();
            *g = 1;
            core.notify(1);
        }
        t.join().unwrap();
        assert_eq!(core.waiting(), 0);
        assert_eq!(core.tokens(), 0);
    });
}

#[test]
fn condition_notify_one_wakes_exactly_one() {
    // Two waiters with deadlines (they never spin) race one notify(1): exactly as many return
    // notified as notify says it woke (1 if either was registered, else 0), and nothing is left.
    model(|| {
        let core = Arc::new(CondCore::new());
        let lock = Arc::new(loom::sync::Mutex::new(0u32));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (core, lock) = (core.clone(), lock.clone());
                thread::spawn(move || {
                    let slot = RefCell::new(Some(lock.lock().unwrap()));
                    cond_wait(&core, &lock, &slot, Some(()))
                })
            })
            .collect();
        let woke = {
            let _g = lock.lock().unwrap();
            core.notify(1)
        };
        let notified = ts.into_iter().map(|t| u32::from(t.join().unwrap())).sum::<u32>();
        assert!(woke <= 1);
        assert_eq!(notified, woke);
        assert_eq!(core.waiting(), 0);
        assert_eq!(core.tokens(), 0);
    });
}

#[test]
fn condition_timeout_racing_notify_strands_no_token() {
    model(|| {
        let core = Arc::new(CondCore::new());
        let lock = Arc::new(loom::sync::Mutex::new(0u32));
        let t = thread::spawn({
            let (core, lock) = (core.clone(), lock.clone());
            move || {
                let slot = RefCell::new(Some(lock.lock().unwrap()));
                cond_wait(&core, &lock, &slot, Some(()))
            }
        });
        let woke = {
            let _g = lock.lock().unwrap();
            core.notify(1)
        };
        let notified = t.join().unwrap();
        assert_eq!(notified, woke == 1);
        assert_eq!(core.waiting(), 0);
        assert_eq!(core.tokens(), 0);
    });
}

// ---- Barrier ----------------------------------------------------------------------------------

fn barrier_pass(b: &BarrierCore, deadline: Option<()>) -> Result<u32, ()> {
    match b.arrive(deadline).map_err(|_| ())? {
        Arrival::Waiter { generation, index } => b.await_release(generation, deadline).map(|_| index).map_err(|_| ()),
        Arrival::Last { generation } => b.release(generation).map(|_| b.parties() - 1).map_err(|_| ()),
    }
}

#[test]
fn barrier_two_parties_two_generations() {
    model(|| {
        let b = Arc::new(BarrierCore::new(2));
        let t = thread::spawn({
            let b = b.clone();
            move || [barrier_pass(&b, None).unwrap(), barrier_pass(&b, None).unwrap()]
        });
        let mine = [barrier_pass(&b, None).unwrap(), barrier_pass(&b, None).unwrap()];
        let theirs = t.join().unwrap();
        for g in 0..2 {
            assert_eq!(mine[g] + theirs[g], 1, "indices 0 and 1 in every generation");
        }
        assert!(!b.is_broken());
        assert_eq!(b.n_waiting(), 0);
    });
}

#[test]
fn barrier_timeout_breaks_for_both_or_neither() {
    model(|| {
        let b = Arc::new(BarrierCore::new(2));
        let t = thread::spawn({
            let b = b.clone();
            move || barrier_pass(&b, Some(())).is_ok()
        });
        let mine = barrier_pass(&b, None).is_ok();
        let theirs = t.join().unwrap();
        assert_eq!(mine, theirs);
        assert_eq!(b.is_broken(), !mine);
    });
}

#[test]
fn barrier_abort_wakes_waiter() {
    model(|| {
        let b = Arc::new(BarrierCore::new(2));
        let t = thread::spawn({
            let b = b.clone();
            move || barrier_pass(&b, None)
        });
        b.abort();
        assert!(t.join().unwrap().is_err());
        assert!(b.is_broken());
        b.reset();
        assert!(!b.is_broken());
    });
}

#[test]
fn barrier_reset_fails_current_waiter() {
    model(|| {
        let b = Arc::new(BarrierCore::new(2));
        let t = thread::spawn({
            let b = b.clone();
            move || barrier_pass(&b, None)
        });
        // Reset once the other party is inside; then it must fail, and the barrier be fresh.
        loop {
            if b.n_waiting() == 1 {
                b.reset();
                break;
            }
            thread::yield_now();
        }
        assert!(t.join().unwrap().is_err());
        assert!(!b.is_broken());
        assert_eq!(b.n_waiting(), 0);
    });
}

// ---- wait over several eventcounts (pipe::wait's futex_waitv sleep) ---------------------------

/// The kernel's `futex_waitv`, strictly: returns only once some word no longer holds its key.
/// Without spurious returns a lost wake-up is a spin that never ends, which loom reports.
fn futex_wait_any(words: &[(&AtomicU32, u32)]) {
    while words.iter().all(|(w, k)| w.load(Ordering::SeqCst) == *k) {
        thread::yield_now();
    }
}

/// `pipe::wait`'s sleep (see `FastEventCount::announce`): announce on every eventcount, one
/// barrier, check every flag, sleep on every word; after a wake-up check and start over.
/// Returns the index of a set flag.
fn wait_any_of(ecs: &[&FastEventCount], flags: &[&AtomicU32]) -> usize {
    let ready = || flags.iter().position(|f| f.load(Ordering::Acquire) != 0);
    loop {
        let words: Vec<(&AtomicU32, u32)> = ecs
            .iter()
            .map(|ec| {
                let key = ec.announce();
                (ec.word(), key)
            })
            .collect();
        shim::heavy_barrier(None);
        if let Some(i) = ready() {
            return i;
        }
        futex_wait_any(&words);
        if let Some(i) = ready() {
            return i;
        }
    }
}

/// Publishes flag `i` (Release, as a queue commits a message) and notifies its eventcount.
fn set_and_notify(flag: &AtomicU32, ec: &FastEventCount) {
    flag.store(1, Ordering::Release);
    ec.notify_all();
}

#[test]
fn wait_any_wakes_on_the_second_eventcount() {
    model(|| {
        let ecs = Arc::new([FastEventCount::new(), FastEventCount::new()]);
        let flags = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let t = thread::spawn({
            let (ecs, flags) = (ecs.clone(), flags.clone());
            move || set_and_notify(&flags[1], &ecs[1])
        });
        assert_eq!(wait_any_of(&[&ecs[0], &ecs[1]], &[&flags[0], &flags[1]]), 1);
        t.join().unwrap();
    });
}

#[test]
fn wait_any_shares_an_eventcount_with_a_single_waiter() {
    // Another thread waits on the second eventcount alone, once (loom has no fairness: two
    // threads that both spin until notified could take turns for ever). Whichever of the two
    // sets SLEEPERS, the other finds it set, and one notification must serve both.
    model(|| {
        let ecs = Arc::new([FastEventCount::new(), FastEventCount::new()]);
        let flags = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let single = thread::spawn({
            let (ecs, flags) = (ecs.clone(), flags.clone());
            move || ecs[1].wait_until(Some(()), || (flags[1].load(Ordering::Acquire) != 0).then_some(())).is_some()
        });
        let notifier = thread::spawn({
            let (ecs, flags) = (ecs.clone(), flags.clone());
            move || set_and_notify(&flags[1], &ecs[1])
        });
        assert_eq!(wait_any_of(&[&ecs[0], &ecs[1]], &[&flags[0], &flags[1]]), 1);
        single.join().unwrap();
        notifier.join().unwrap();
    });
}

#[test]
fn wait_any_with_two_notifiers_returns_a_set_flag() {
    model(|| {
        let ecs = Arc::new([FastEventCount::new(), FastEventCount::new()]);
        let flags = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let ts: Vec<_> = (0..2)
            .map(|i| {
                let (ecs, flags) = (ecs.clone(), flags.clone());
                thread::spawn(move || set_and_notify(&flags[i], &ecs[i]))
            })
            .collect();
        let i = wait_any_of(&[&ecs[0], &ecs[1]], &[&flags[0], &flags[1]]);
        assert_eq!(flags[i].load(Ordering::SeqCst), 1);
        for t in ts {
            t.join().unwrap();
        }
    });
}
