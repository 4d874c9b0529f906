//! The `lock_api` adapter (feature `lock_api`): a lock_api Mutex over the robust raw lock, in
//! memory of the caller's own layout, shared across processes and surviving its holder's death.
#![cfg(feature = "lock_api")]
#![allow(unsafe_code)]

mod common;

use std::time::Duration;

use lock_api::RawMutex as _;
use shmproc::{Process, RawRobustMutex, RawValue, SharedMemory};

type ShmLock<T> = lock_api::Mutex<RawRobustMutex, T>;

/// Lays a `ShmLock<u64>` over the start of a zero-filled shared block.
fn lock_in(shm: &SharedMemory) -> &ShmLock<u64> {
    assert!(shm.len() >= std::mem::size_of::<ShmLock<u64>>());
    let p = shm.as_ptr().cast::<ShmLock<u64>>();
    assert!(p.is_aligned());
    // SAFETY: the block is zero-filled, large enough and aligned; all-zero is the valid initial
    // state of RawRobustMutex (its INIT) and of u64, and the block outlives the reference.
    unsafe { &*p }
}

#[test]
fn threads_exclude_each_other() {
    let m: ShmLock<u64> = ShmLock::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    *m.lock() += 1;
                }
            });
        }
    });
    assert_eq!(*m.lock(), 40_000);
    assert!(m.try_lock_for(Duration::from_millis(1)).is_some());
    // The owner's try forms say None (lock_api's contract), they do not panic.
    let g = m.lock();
    assert!(m.try_lock().is_none());
    assert!(m.try_lock_for(Duration::from_millis(1)).is_none());
    drop(g);
}

#[test]
fn processes_share_it_and_it_survives_a_killed_holder() {
    let _fork = common::fork_lock();
    let _dog = common::Watchdog::new(Duration::from_secs(60));
    let shm = SharedMemory::new(4096).expect("shm");
    let m = lock_in(&shm);
    let workers: Vec<Process> = (0..2)
        .map(|_| {
            let shm = shm.clone();
            Process::new(move || {
                let m = lock_in(&shm);
                for _ in 0..5_000 {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for w in &workers {
        w.start().expect("start");
    }
    for w in &workers {
        w.join().expect("join");
        assert_eq!(w.exitcode(), Some(0));
    }
    assert_eq!(*m.lock(), 10_000);

    // A holder killed with the lock held: the next locker gets it, with the poison flag set.
    let held = RawValue::new(0u32).expect("flag");
    let holder = Process::new({
        let shm = shm.clone();
        let held = held.clone();
        move || {
            let m = lock_in(&shm);
            let _g = m.lock();
            held.store(1);
            common::park_forever();
        }
    });
    holder.start().expect("start");
    assert!(common::wait_for(Duration::from_secs(20), || held.load() == 1));
    assert!(m.is_locked());
    assert!(m.try_lock().is_none());
    holder.kill().expect("kill");
    holder.join().expect("join");
    let g = m.try_lock_for(Duration::from_secs(10)).expect("a dead holder's lock is recovered");
    assert_eq!(*g, 10_000);
    drop(g);
    // SAFETY: only reads the raw lock's flag; no guard is outstanding.
    let raw = unsafe { m.raw() };
    assert!(raw.is_poisoned());
    raw.clear_poison();
    assert!(!raw.is_poisoned());
    assert!(!raw.is_locked());
    raw.lock();
    // SAFETY: this thread took the raw lock just above.
    unsafe { raw.unlock(lock_api::GuardNoSend::new()) };
}
