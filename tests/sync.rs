//! Semaphore, BoundedSemaphore, Event, Condition and Barrier across processes: the checks of
//! CPython's `_test_multiprocessing` / `test_threading` for these primitives, with forked
//! children. Children report through exit codes and shared memory only; every wait is bounded and
//! every multi-process test runs under a watchdog.

#![allow(unsafe_code)] // libc::raise(SIGKILL) in the holder-death test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Watchdog, fork_lock};
use shmproc::{Barrier, BoundedSemaphore, Condition, Error, Event, Lock, LockError, Mutex, Process, RLock, Semaphore};

// ---- helpers ----------------------------------------------------------------------------------

/// Starts a child process that runs `f` and exits with its return value (1 if it panics).
fn spawn(f: impl FnOnce() -> i32 + Send + 'static) -> Child {
    let p = Process::new(move || {
        let code = f();
        if code != 0 {
            shmproc::exit(code);
        }
    });
    p.start().expect("start a child");
    Child(p)
}

/// A started child; `join` reaps it (killing it first if it outlives the limit).
struct Child(Process);

impl Child {
    /// The exit code (`-signal` when killed), waiting at most `limit`; kills it on timeout.
    fn join(self, limit: Duration) -> Option<i32> {
        if !self.0.join_timeout(limit).expect("join a started child") {
            let _ = self.0.kill();
            let _ = self.0.join();
            return None;
        }
        self.0.exitcode()
    }

    fn kill(&self) {
        self.0.kill().expect("kill a running child");
    }
}

fn join_ok(c: Child) {
    assert_eq!(c.join(Duration::from_secs(20)), Some(0));
}

/// Polls `cond` until it holds or 10 s pass; false on timeout.
fn eventually(cond: impl FnMut() -> bool) -> bool {
    common::wait_for(Duration::from_secs(10), cond)
}

fn unique(tag: &str) -> String {
    common::unique_name(&format!("sync3-{tag}"))
}

const LONG: Duration = Duration::from_secs(10);

// ---- Semaphore --------------------------------------------------------------------------------

#[test]
fn semaphore_counts() {
    // CPython _test_semaphore: counting, non-blocking failure, release above the initial value.
    let sem = Semaphore::new(2).unwrap();
    assert_eq!(sem.value(), 2);
    sem.acquire();
    assert_eq!(sem.value(), 1);
    assert!(sem.try_acquire());
    assert_eq!(sem.value(), 0);
    assert!(!sem.try_acquire());
    assert!(!sem.acquire_python(false, None));
    assert!(!sem.acquire_python(true, Some(Duration::ZERO)));
    sem.release().unwrap();
    assert_eq!(sem.value(), 1);
    sem.release().unwrap();
    sem.release().unwrap(); // above the initial value: allowed
    assert_eq!(sem.value(), 3);
    assert!(sem.acquire_python(true, None));
    assert!(sem.acquire_timeout(Duration::from_millis(1)));
    assert_eq!(sem.value(), 1);
}

#[test]
fn semaphore_acquire_timeout_waits_at_least_the_timeout() {
    let sem = Semaphore::new(0).unwrap();
    let t = Instant::now();
    assert!(!sem.acquire_timeout(Duration::from_millis(100)));
    assert!(t.elapsed() >= Duration::from_millis(100));
    let t = Instant::now();
    assert!(!sem.acquire_python(true, Some(Duration::from_millis(50))));
    assert!(t.elapsed() >= Duration::from_millis(50));
}

#[test]
fn semaphore_rejects_values_above_sem_value_max() {
    assert!(matches!(Semaphore::new(shmproc::SEM_VALUE_MAX + 1), Err(Error::InvalidArgument(_))));
    let sem = Semaphore::new(shmproc::SEM_VALUE_MAX).unwrap();
    assert!(matches!(sem.release(), Err(Error::ReleasedTooManyTimes)));
}

#[test]
fn semaphore_blocks_until_another_process_releases() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let sem = Semaphore::new(0).unwrap();
    let passed = Semaphore::new(0).unwrap();
    let child = spawn({
        let (sem, passed) = (sem.clone(), passed.clone());
        move || {
            sem.acquire();
            passed.release().unwrap();
            0
        }
    });
    // The child cannot pass while the count is 0.
    assert!(!passed.acquire_timeout(Duration::from_millis(100)));
    sem.release().unwrap();
    assert!(passed.acquire_timeout(LONG));
    join_ok(child);
    assert_eq!(sem.value(), 0);
}

#[test]
fn semaphore_limits_concurrency_across_processes() {
    // The tutorial's semaphore-limited workers: never more than 2 inside at once.
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let sem = Semaphore::new(2).unwrap();
    let stats = Mutex::new([0u32; 3]).unwrap(); // inside now, most inside, total passes
    let children: Vec<_> = (0..5)
        .map(|_| {
            let (sem, stats) = (sem.clone(), stats.clone());
            spawn(move || {
                for _ in 0..20 {
                    if !sem.acquire_timeout(LONG) {
                        return 2;
                    }
                    {
                        let mut s = stats.lock().unwrap();
                        s[0] += 1;
                        s[1] = s[1].max(s[0]);
                    }
                    std::thread::yield_now();
                    {
                        let mut s = stats.lock().unwrap();
                        s[0] -= 1;
                        s[2] += 1;
                    }
                    sem.release().unwrap();
                }
                0
            })
        })
        .collect();
    for c in children {
        join_ok(c);
    }
    let s = *stats.lock().unwrap();
    assert_eq!(s[0], 0);
    assert!(s[1] >= 1 && s[1] <= 2, "at most 2 inside at once, saw {}", s[1]);
    assert_eq!(s[2], 100);
    assert_eq!(sem.value(), 2);
}

#[test]
fn semaphore_many_waiters_all_woken_by_releases() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let sem = Semaphore::new(0).unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            let sem = sem.clone();
            spawn(move || if sem.acquire_timeout(LONG) { 0 } else { 1 })
        })
        .collect();
    for _ in 0..4 {
        sem.release().unwrap();
    }
    for c in children {
        join_ok(c);
    }
    assert_eq!(sem.value(), 0);
}

#[test]
fn bounded_semaphore_overflow_is_an_error() {
    // CPython test_bounded_semaphore: release above the initial value raises ValueError.
    let sem = BoundedSemaphore::new(2).unwrap();
    assert_eq!(sem.max_value(), 2);
    assert!(matches!(sem.release(), Err(Error::ReleasedTooManyTimes)));
    assert_eq!(sem.value(), 2);
    sem.acquire();
    sem.release().unwrap();
    assert!(matches!(sem.release(), Err(Error::ReleasedTooManyTimes)));
    assert_eq!(sem.value(), 2);
    assert!(Error::ReleasedTooManyTimes.to_string().contains("released too many times"));
}

#[test]
fn bounded_semaphore_release_from_another_process() {
    // Semaphores are not owned: a child may release what the parent acquired.
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let sem = BoundedSemaphore::new(1).unwrap();
    sem.acquire();
    let child = spawn({
        let sem = sem.clone();
        move || {
            sem.release().unwrap();
            match sem.release() {
                Err(Error::ReleasedTooManyTimes) => 0,
                _ => 1,
            }
        }
    });
    join_ok(child);
    assert_eq!(sem.value(), 1);
}

#[test]
fn semaphore_named_create_open_and_type_checks() {
    let name = unique("sem");
    let sem = Semaphore::create(&name, 3).unwrap();
    assert_eq!(sem.name(), Some(name.as_str()));
    let other = Semaphore::open(&name).unwrap();
    other.acquire();
    assert_eq!(sem.value(), 2);
    assert!(matches!(BoundedSemaphore::open(&name), Err(Error::WrongType { .. })));
    assert!(matches!(Event::open(&name), Err(Error::WrongKind { .. })));
    assert!(matches!(Semaphore::create(&name, 1), Err(Error::AlreadyExists { .. })));
    sem.unlink().unwrap();
    assert!(matches!(Semaphore::open(&name), Err(Error::NotFound { .. })));
    // Handles keep working after unlink.
    other.release().unwrap();
    assert_eq!(sem.value(), 3);

    let name = unique("bsem");
    let b = BoundedSemaphore::create(&name, 1).unwrap();
    let b2 = BoundedSemaphore::open(&name).unwrap();
    assert_eq!(b2.max_value(), 1);
    assert!(matches!(Semaphore::open(&name), Err(Error::WrongType { .. })));
    b.unlink().unwrap();
}

#[test]
fn named_semaphore_shared_with_child_by_name() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let name = unique("semchild");
    let sem = Semaphore::create(&name, 0).unwrap();
    let child = spawn({
        let name = name.clone();
        move || match Semaphore::open(&name) {
            Ok(s) => {
                s.release().unwrap();
                0
            }
            Err(_) => 1,
        }
    });
    assert!(sem.acquire_timeout(LONG));
    join_ok(child);
    sem.unlink().unwrap();
}

// ---- Event ------------------------------------------------------------------------------------

#[test]
fn event_set_clear_wait() {
    // CPython test_event: wait returns the flag.
    let ev = Event::new().unwrap();
    assert!(!ev.is_set());
    assert!(!ev.try_wait());
    let t = Instant::now();
    assert!(!ev.wait_timeout(Duration::from_millis(100)));
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(!ev.wait_python(Some(Duration::ZERO)));
    ev.set();
    assert!(ev.is_set());
    ev.wait();
    assert!(ev.wait_timeout(Duration::ZERO));
    assert!(ev.wait_python(None));
    ev.set(); // again: harmless
    ev.clear();
    assert!(!ev.is_set());
    assert!(!ev.wait_timeout(Duration::from_millis(1)));
}

#[test]
fn event_wakes_waiters_in_several_processes() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let ev = Event::new().unwrap();
    let started = Semaphore::new(0).unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            let (ev, started) = (ev.clone(), started.clone());
            spawn(move || {
                started.release().unwrap();
                if ev.wait_timeout(LONG) { 0 } else { 1 }
            })
        })
        .collect();
    for _ in 0..4 {
        assert!(started.acquire_timeout(LONG));
    }
    for c in &children {
        let pid = c.0.pid().unwrap();
        assert!(common::await_futex_sleep(pid, LONG), "child {pid} never slept in its wait");
    }
    ev.set();
    for c in children {
        join_ok(c);
    }
}

#[test]
fn event_clear_then_wait_blocks_again_across_processes() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let ev = Event::new().unwrap();
    let back = Event::new().unwrap();
    let child = spawn({
        let (ev, back) = (ev.clone(), back.clone());
        move || {
            for _ in 0..50 {
                if !ev.wait_timeout(LONG) {
                    return 1;
                }
                ev.clear();
                back.set();
            }
            0
        }
    });
    for _ in 0..50 {
        ev.set();
        assert!(back.wait_timeout(LONG));
        back.clear();
    }
    join_ok(child);
}

#[test]
fn event_named() {
    let name = unique("event");
    let ev = Event::create(&name).unwrap();
    let other = Event::open(&name).unwrap();
    other.set();
    assert!(ev.is_set());
    assert!(matches!(Semaphore::open(&name), Err(Error::WrongKind { .. })));
    ev.unlink().unwrap();
}

// ---- Condition --------------------------------------------------------------------------------

#[test]
fn condition_wait_timeout_and_notify_without_waiters() {
    let cond = Condition::new().unwrap();
    // Python: notify without holding the lock is an error, waiters or not.
    assert!(matches!(cond.notify(1), Err(Error::LockNotHeld)));
    assert!(matches!(cond.notify_all(), Err(Error::LockNotHeld)));
    let g = cond.lock().lock().unwrap();
    cond.notify(1).unwrap();
    cond.notify_all().unwrap();
    let t = Instant::now();
    let (g, r) = cond.wait_timeout(g, Duration::from_millis(100)).unwrap();
    assert!(r.timed_out());
    assert!(t.elapsed() >= Duration::from_millis(100));
    let (g, r) = cond.try_wait(g).unwrap();
    assert!(r.timed_out());
    assert_eq!(cond.n_waiting(), 0);
    drop(g);
    assert!(!cond.lock().is_locked());
}

#[test]
fn condition_wait_without_lock_is_an_error() {
    // CPython: "must acquire() condition before using wait()".
    let cond = Condition::new().unwrap();
    assert!(matches!(cond.wait_python(Some(Duration::ZERO)), Err(Error::LockNotHeld)));
    assert!(cond.acquire(true, None).unwrap());
    assert!(!cond.wait_python(Some(Duration::from_millis(10))).unwrap());
    assert!(cond.lock().is_locked());
    cond.release().unwrap();
    assert!(matches!(cond.release(), Err(Error::NotLocked)));
}

#[test]
fn condition_notify_without_lock_is_an_error_when_someone_waits() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let cond = Condition::with_lock(Mutex::new(0u32).unwrap()).unwrap();
    let child = spawn({
        let cond = cond.clone();
        move || {
            let g = cond.lock().lock().unwrap();
            let g = cond.wait_while(g, |g| **g == 0).unwrap();
            if *g == 1 { 0 } else { 1 }
        }
    });
    assert!(eventually(|| cond.n_waiting() == 1));
    assert!(matches!(cond.notify(1), Err(Error::LockNotHeld)));
    assert!(matches!(cond.notify_all(), Err(Error::LockNotHeld)));
    {
        let mut g = cond.lock().lock().unwrap();
        *g = 1;
        cond.notify_one().unwrap();
    }
    join_ok(child);
}

#[test]
fn condition_notify_n_wakes_exactly_n() {
    // CPython test_notify_n: notify(n) wakes n of the sleepers, no more.
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let cond = Condition::with_lock(Mutex::new([0u32; 2]).unwrap()).unwrap(); // [woken, spurious]
    let children: Vec<_> = (0..5)
        .map(|_| {
            let cond = cond.clone();
            spawn(move || {
                let g = cond.lock().lock().unwrap();
                let (mut g, r) = cond.wait_timeout(g, LONG).unwrap();
                if r.timed_out() {
                    return 1;
                }
                g[0] += 1;
                0
            })
        })
        .collect();
    assert!(eventually(|| cond.n_waiting() == 5));
    {
        let _g = cond.lock().lock().unwrap();
        cond.notify(2).unwrap();
        // Exactly two were moved from waiting to notified.
        assert_eq!(cond.n_waiting(), 3);
    }
    assert!(eventually(|| cond.lock().lock().unwrap()[0] == 2));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(cond.lock().lock().unwrap()[0], 2, "notify(2) woke more than 2");
    {
        let _g = cond.lock().lock().unwrap();
        cond.notify(1).unwrap();
        assert_eq!(cond.n_waiting(), 2);
    }
    assert!(eventually(|| cond.lock().lock().unwrap()[0] == 3));
    {
        let _g = cond.lock().lock().unwrap();
        cond.notify(10).unwrap(); // more than are waiting: harmless
        assert_eq!(cond.n_waiting(), 0);
    }
    for c in children {
        join_ok(c);
    }
    assert_eq!(cond.lock().lock().unwrap()[0], 5);
}

#[test]
fn condition_notify_all_wakes_every_process() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let cond = Condition::with_lock(Mutex::new(0u32).unwrap()).unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            let cond = cond.clone();
            spawn(move || {
                let g = cond.lock().lock().unwrap();
                match cond.wait_for(g, |g| **g == 1, Some(LONG)) {
                    Ok((_, true)) => 0,
                    _ => 1,
                }
            })
        })
        .collect();
    assert!(eventually(|| cond.n_waiting() == 4));
    {
        let mut g = cond.lock().lock().unwrap();
        *g = 1;
        cond.notify_all().unwrap();
    }
    for c in children {
        join_ok(c);
    }
}

#[test]
fn condition_wait_for_with_timeout_returns_false() {
    // CPython test_waitfor_timeout: the predicate never holds, wait_for returns False after the
    // timeout, and the lock is held again.
    let cond = Condition::with_lock(Mutex::new(0u32).unwrap()).unwrap();
    let g = cond.lock().lock().unwrap();
    let t = Instant::now();
    let (g, ok) = cond.wait_for(g, |g| **g == 1, Some(Duration::from_millis(100))).unwrap();
    assert!(!ok);
    assert!(t.elapsed() >= Duration::from_millis(100));
    // A predicate that already holds returns at once without waiting.
    let (g, ok) = cond.wait_for(g, |g| **g == 0, Some(Duration::ZERO)).unwrap();
    assert!(ok);
    drop(g);
}

#[test]
fn condition_wait_for_across_processes() {
    // CPython test_waitfor: a child bumps a shared value and notifies until the predicate holds.
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let cond = Condition::with_lock(Mutex::new(0u32).unwrap()).unwrap();
    let child = spawn({
        let cond = cond.clone();
        move || {
            for _ in 0..5 {
                std::thread::sleep(Duration::from_millis(5));
                let mut g = cond.lock().lock().unwrap();
                *g += 1;
                cond.notify_all().unwrap();
            }
            0
        }
    });
    let g = cond.lock().lock().unwrap();
    let (g, ok) = cond.wait_for(g, |g| **g == 5, Some(LONG)).unwrap();
    assert!(ok);
    assert_eq!(*g, 5);
    drop(g);
    join_ok(child);
}

#[test]
fn condition_over_rlock_releases_every_level() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let cond = Condition::with_lock(RLock::new().unwrap()).unwrap();
    let flag = Event::new().unwrap();
    let child = spawn({
        let (cond, flag) = (cond.clone(), flag.clone());
        move || {
            // Only possible if the parent's wait released both levels.
            let g = match cond.lock().lock_timeout(LONG) {
                Ok(g) => g,
                Err(_) => return 1,
            };
            flag.set();
            cond.notify_all().unwrap();
            drop(g);
            0
        }
    });
    let outer = cond.lock().lock().unwrap();
    let inner = cond.lock().lock().unwrap();
    let inner = cond.wait_while(inner, |_| !flag.is_set()).unwrap();
    assert!(cond.lock().is_owned_by_current_thread());
    drop(inner);
    assert!(cond.lock().is_owned_by_current_thread());
    drop(outer);
    assert!(!cond.lock().is_locked());
    join_ok(child);
}

#[test]
fn condition_lock_holder_death_poisons_waiters() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let cond = Condition::with_lock(Mutex::new(0u32).unwrap()).unwrap();
    let child = spawn({
        let cond = cond.clone();
        move || {
            if !eventually(|| cond.n_waiting() == 1) {
                return 1;
            }
            let g = cond.lock().lock().unwrap();
            std::mem::forget(g);
            // Killed while holding the lock.
            // SAFETY: raises SIGKILL on ourselves.
            unsafe { libc::raise(libc::SIGKILL) };
            2
        }
    });
    let g = cond.lock().lock().unwrap();
    match cond.wait(g) {
        Err(LockError::Poisoned(p)) => drop(p.into_inner()),
        Ok(_) => panic!("expected a poison error"),
        Err(e) => panic!("expected a poison error, got {e:?}"),
    }
    assert_eq!(child.join(LONG), Some(-libc::SIGKILL));
    assert!(cond.lock().is_poisoned());
    cond.lock().clear_poison();
    assert_eq!(cond.n_waiting(), 0);
    let g = cond.lock().lock().unwrap();
    let (_g, r) = cond.wait_timeout(g, Duration::from_millis(10)).unwrap();
    assert!(r.timed_out());
}

#[test]
fn condition_named() {
    let lname = unique("condlock");
    let cname = unique("cond");
    let lock = Mutex::create(&lname, 0u32).unwrap();
    let cond = Condition::create(&cname, lock).unwrap();
    let cond2 = Condition::open(&cname, Mutex::<u32>::open(&lname).unwrap()).unwrap();
    assert_eq!(cond2.name(), Some(cname.as_str()));
    assert!(matches!(Condition::open(&lname, Lock::new(()).unwrap()), Err(Error::WrongKind { .. })));
    cond.unlink().unwrap();
    cond.lock().unlink().unwrap();
}

// ---- Barrier ----------------------------------------------------------------------------------

#[test]
fn barrier_single_process_basics() {
    let b = Barrier::new(1).unwrap();
    assert_eq!(b.parties(), 1);
    assert_eq!(b.wait().unwrap(), 0);
    assert_eq!(b.try_wait().unwrap(), 0);
    assert!(!b.is_broken());
    assert!(matches!(Barrier::new(0), Err(Error::InvalidArgument(_))));
    let b2 = Barrier::new(2).unwrap();
    assert_eq!(b2.n_waiting(), 0);
    // A lone party of two times out and breaks the barrier.
    assert!(matches!(b2.try_wait(), Err(Error::BrokenBarrier)));
    assert!(b2.is_broken());
    assert!(matches!(b2.wait_timeout(LONG), Err(Error::BrokenBarrier)));
    b2.reset();
    assert!(!b2.is_broken());
}

#[test]
fn barrier_n_processes_many_generations() {
    // CPython test_barrier / test_action: N parties, many passes, distinct indices, the action
    // once per generation.
    const N: u32 = 4;
    const GENS: usize = 30;
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(120));
    let actions = Semaphore::new(0).unwrap();
    let seen = Mutex::new([0u32; GENS]).unwrap(); // per generation: bitmask of indices
    let barrier = Barrier::new(N).unwrap().with_action({
        let actions = actions.clone();
        move || actions.release().unwrap()
    });
    let party = {
        let (barrier, seen) = (barrier.clone(), seen.clone());
        move || -> i32 {
            for g in 0..GENS {
                let i = match barrier.wait_timeout(LONG) {
                    Ok(i) => i,
                    Err(_) => return 3,
                };
                seen.lock().unwrap()[g] |= 1 << i;
            }
            0
        }
    };
    let children: Vec<_> = (0..N - 1).map(|_| spawn(party.clone())).collect();
    assert_eq!(party(), 0);
    for c in children {
        join_ok(c);
    }
    let seen = *seen.lock().unwrap();
    assert!(seen.iter().all(|m| *m == (1 << N) - 1), "indices per generation: {seen:?}");
    assert_eq!(actions.value() as usize, GENS);
    assert!(!barrier.is_broken());
    assert_eq!(barrier.n_waiting(), 0);
}

#[test]
fn barrier_timeout_breaks_it_for_everyone() {
    // CPython test_timeout / test_default_timeout.
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let barrier = Barrier::new(3).unwrap();
    let child = spawn({
        let barrier = barrier.clone();
        move || match barrier.wait_timeout(LONG) {
            Err(Error::BrokenBarrier) => 0,
            _ => 1,
        }
    });
    assert!(eventually(|| barrier.n_waiting() == 1));
    let b = barrier.clone().with_timeout(Some(Duration::from_millis(100)));
    let t = Instant::now();
    assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
    assert!(t.elapsed() >= Duration::from_millis(100));
    join_ok(child);
    assert!(barrier.is_broken());
    assert_eq!(barrier.n_waiting(), 0);
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
    barrier.reset();
    assert!(!barrier.is_broken());
}

#[test]
fn barrier_abort_wakes_waiters_with_broken() {
    // CPython test_abort.
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let barrier = Barrier::new(3).unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            spawn(move || match barrier.wait_timeout(LONG) {
                Err(Error::BrokenBarrier) => 0,
                _ => 1,
            })
        })
        .collect();
    assert!(eventually(|| barrier.n_waiting() == 2));
    barrier.abort();
    for c in children {
        join_ok(c);
    }
    assert!(barrier.is_broken());
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
}

#[test]
fn barrier_reset_breaks_current_waiters_then_works_again() {
    // CPython test_reset / test_abort_and_reset: waiters get BrokenBarrier, then the barrier is
    // usable for full generations again.
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let barrier = Barrier::new(2).unwrap();
    let child = spawn({
        let barrier = barrier.clone();
        move || {
            if !matches!(barrier.wait_timeout(LONG), Err(Error::BrokenBarrier)) {
                return 1;
            }
            for _ in 0..10 {
                if barrier.wait_timeout(LONG).is_err() {
                    return 2;
                }
            }
            0
        }
    });
    assert!(eventually(|| barrier.n_waiting() == 1));
    barrier.reset();
    assert!(!barrier.is_broken());
    for _ in 0..10 {
        barrier.wait_timeout(LONG).unwrap();
    }
    join_ok(child);
}

#[test]
fn barrier_abort_then_reset_makes_it_usable() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let barrier = Barrier::new(2).unwrap();
    barrier.abort();
    assert!(matches!(barrier.try_wait(), Err(Error::BrokenBarrier)));
    barrier.reset();
    let child = spawn({
        let barrier = barrier.clone();
        move || if barrier.wait_timeout(LONG).is_ok() { 0 } else { 1 }
    });
    let i = barrier.wait_timeout(LONG).unwrap();
    assert!(i < 2);
    join_ok(child);
}

#[test]
fn barrier_party_killed_others_time_out_with_broken() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let barrier = Barrier::new(3).unwrap().with_timeout(Some(Duration::from_millis(300)));
    let doomed = spawn({
        let barrier = barrier.clone();
        move || {
            // Would arrive much later: killed before it does.
            std::thread::sleep(Duration::from_secs(30));
            barrier.wait().map_or(5, |_| 6)
        }
    });
    let other = spawn({
        let barrier = barrier.clone();
        move || match barrier.wait() {
            Err(Error::BrokenBarrier) => 0,
            _ => 1,
        }
    });
    assert!(eventually(|| barrier.n_waiting() == 1 || barrier.is_broken()));
    doomed.kill();
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
    join_ok(other);
    assert_eq!(doomed.join(LONG), Some(-libc::SIGKILL));
    assert!(barrier.is_broken());
}

#[test]
fn barrier_panicking_action_breaks_it() {
    // CPython test_action_exception: the barrier breaks and that caller gets the exception.
    let barrier = Barrier::new(1).unwrap().with_action(|| panic!("action failed"));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| barrier.wait()));
    assert!(r.is_err());
    assert!(barrier.is_broken());
    // The same barrier through a handle without the panicking action: still broken.
    let plain = barrier.clone().with_action(|| {});
    assert!(matches!(plain.wait(), Err(Error::BrokenBarrier)));
}

#[test]
fn barrier_named() {
    let name = unique("barrier");
    let b = Barrier::create(&name, 2).unwrap();
    let b2 = Barrier::open(&name).unwrap();
    assert_eq!(b2.parties(), 2);
    assert!(matches!(Event::open(&name), Err(Error::WrongKind { .. })));
    b.abort();
    assert!(b2.is_broken());
    b.unlink().unwrap();
}

#[test]
fn barrier_last_arrival_runs_its_action_and_gets_last_index() {
    // Python: the last party to arrive gets parties-1 and runs the action before the others go.
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let ran = Arc::new(AtomicU32::new(0));
    let released = Event::new().unwrap();
    let barrier = Barrier::new(2).unwrap();
    let child = spawn({
        let (barrier, released) = (barrier.clone(), released.clone());
        move || {
            // The child's handle has no action; it must not pass before the parent's action ran.
            match barrier.wait_timeout(LONG) {
                Ok(0) if released.is_set() => 0,
                Ok(_) => 1,
                Err(_) => 2,
            }
        }
    });
    assert!(eventually(|| barrier.n_waiting() == 1));
    let mine = barrier.clone().with_action({
        let (ran, released) = (ran.clone(), released.clone());
        move || {
            ran.fetch_add(1, Ordering::SeqCst);
            released.set();
        }
    });
    assert_eq!(mine.wait_timeout(LONG).unwrap(), 1);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    join_ok(child);
}

#[test]
fn condition_named_across_processes() {
    let _f = fork_lock();
    let _w = Watchdog::new(Duration::from_secs(60));
    let (lname, cname) = (unique("nclock"), unique("ncond"));
    let cond = Condition::create(&cname, Mutex::create(&lname, 0u32).unwrap()).unwrap();
    let child = spawn({
        let (lname, cname) = (lname.clone(), cname.clone());
        move || {
            let Ok(lock) = Mutex::<u32>::open(&lname) else { return 1 };
            let Ok(cond) = Condition::open(&cname, lock) else { return 2 };
            let g = cond.lock().lock().unwrap();
            match cond.wait_for(g, |v| **v == 7, Some(LONG)) {
                Ok((_, true)) => 0,
                _ => 3,
            }
        }
    });
    assert!(eventually(|| cond.n_waiting() == 1));
    {
        let mut g = cond.lock().lock().unwrap();
        *g = 7;
        cond.notify_one().unwrap();
    }
    join_ok(child);
    cond.unlink().unwrap();
    cond.lock().unlink().unwrap();
}
