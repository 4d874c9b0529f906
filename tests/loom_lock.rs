//! loom model of the lock word behind Mutex/RLock (`src/sync/lockword.rs`, included as it ships
//! over a shim of loom atomics): mutual exclusion, no lost wake-up between a release and a
//! sleeper, and a takeover from a dead owner that never races a live owner's release.
//!
//! `futex_wait` yields while the word holds the expected value, so a lost wake-up is a spin that
//! never ends, which loom reports; `futex_wake` does nothing.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_lock`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;

#[allow(dead_code)]
mod shim {
    pub(crate) use loom::sync::atomic::{AtomicU32, Ordering};

    /// Strict, as the kernel: returns only once the word changed (a lost wake-up is then a
    /// spin that never ends, which loom reports; a single yield would hide it).
    pub(crate) fn futex_wait(word: &AtomicU32, expected: u32) {
        while word.load(Ordering::SeqCst) == expected {
            loom::thread::yield_now();
        }
    }

    pub(crate) fn futex_wake(_word: &AtomicU32, _n: u32) {}
}

#[allow(dead_code)]
#[path = "../src/sync/lockword.rs"]
mod lockword;

use lockword::{Step, TID_MASK};

/// Blocking lock as `sync::mutex` does it, minus the /proc check (no owner dies here).
fn lock(word: &AtomicU32, tid: u32) {
    if lockword::try_acquire(word, tid) {
        return;
    }
    loop {
        match lockword::contended_step(word, tid) {
            Step::Acquired => return,
            Step::Again => {}
            Step::Sleep(expected) => shim::futex_wait(word, expected),
        }
    }
}

#[test]
fn two_lockers_exclude_each_other_and_none_sleeps_for_ever() {
    // Waiting spins in this model (futex_wait yields), so bound preemptions to keep it finite.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let word = Arc::new(AtomicU32::new(0));
        let inside = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (1..=1u32)
            .map(|tid| {
                let (word, inside) = (word.clone(), inside.clone());
                thread::spawn(move || {
                    lock(&word, tid);
                    assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0, "two holders at once");
                    inside.fetch_sub(1, Ordering::Relaxed);
                    lockword::release(&word);
                })
            })
            .collect();
        lock(&word, 3);
        assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0, "two holders at once");
        inside.fetch_sub(1, Ordering::Relaxed);
        lockword::release(&word);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(word.load(Ordering::Relaxed), 0);
    });
}

/// A takeover based on a stale view of the word must fail once the owner released: the owner
/// releases and then raises a flag; a taker that saw the flag before its CAS must lose.
#[test]
fn a_takeover_from_a_stale_view_fails_after_the_release() {
    loom::model(|| {
        let word = Arc::new(AtomicU32::new(0));
        assert!(lockword::try_acquire(&word, 1));
        let seen = word.load(Ordering::Relaxed);
        let released = Arc::new(AtomicU32::new(0));
        let owner = thread::spawn({
            let (word, released) = (word.clone(), released.clone());
            move || {
                lockword::release(&word);
                released.store(1, Ordering::SeqCst);
            }
        });
        let released_before = released.load(Ordering::SeqCst) == 1;
        let took = lockword::take_over(&word, seen, 2);
        owner.join().unwrap();
        assert!(!(released_before && took), "a takeover won against a lock already released");
    });
}

#[test]
fn a_dead_owners_lock_is_taken_over_by_exactly_one_waiter() {
    loom::model(|| {
        let word = Arc::new(AtomicU32::new(0));
        // Thread 1 took the lock and died (never releases).
        assert!(lockword::try_acquire(&word, 1));
        let winners = Arc::new(AtomicU32::new(0));
        let waiters: Vec<_> = (2..=3u32)
            .map(|tid| {
                let (word, winners) = (word.clone(), winners.clone());
                thread::spawn(move || {
                    loop {
                        match lockword::contended_step(&word, tid) {
                            Step::Acquired => break,
                            Step::Again => {}
                            // A slice ended with the lock held: the owner check says whether
                            // the owner named in the word is dead (only thread 1 is).
                            Step::Sleep(w) => {
                                if w & TID_MASK == 1 && lockword::take_over(&word, w, tid) {
                                    winners.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                                shim::futex_wait(&word, w);
                            }
                        }
                    }
                    lockword::release(&word);
                })
            })
            .collect();
        for t in waiters {
            t.join().unwrap();
        }
        assert_eq!(winners.load(Ordering::Relaxed), 1, "exactly one waiter takes the dead owner's lock");
        assert_eq!(word.load(Ordering::Relaxed), 0);
    });
}
