//! Locks, processes and segments: shmproc against its floor (a plain futex lock, raw fork,
//! raw shm syscalls) and its peers (glibc robust pthread mutex, raw_sync, std, parking_lot) in
//! the same run. `python3 benches/compare.py` turns the results into ratios.

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use support::{Counted, FutexLock, RawLock, RawSyncMutex, RobustMutex, Shared};

fn lock_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock_uncontended");
    let futex = Shared::new(FutexLock::default());
    g.bench_function("plain_futex", |b| {
        b.iter(|| {
            futex.lock();
            futex.unlock();
        });
    });
    let robust = RobustMutex::shared();
    g.bench_function("glibc_robust", |b| {
        b.iter(|| {
            robust.lock();
            robust.unlock();
        });
    });
    let raw_sync = RawSyncMutex::new();
    g.bench_function("raw_sync", |b| {
        b.iter(|| {
            raw_sync.lock();
            raw_sync.unlock();
        });
    });
    let std_mutex = std::sync::Mutex::new(0u64);
    g.bench_function("std_mutex", |b| {
        b.iter(|| drop(black_box(&std_mutex).lock()));
    });
    let pl = parking_lot::Mutex::new(0u64);
    g.bench_function("parking_lot", |b| {
        b.iter(|| drop(black_box(&pl).lock()));
    });
    let m = shmproc::Mutex::new(0u64).expect("anonymous mutex");
    g.bench_function("shmproc_mutex", |b| b.iter(|| drop(black_box(&m).lock().expect("lock"))));
    g.finish();
}

fn lock_contended_2proc(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock_contended_2proc");
    // Every sample forks a process; each op is lock + increment + unlock of one shared counter,
    // time is per op (both processes together), and the counter is checked after each sample.
    let futex = Counted::shared(FutexLock::default());
    g.bench_function("plain_futex", |b| {
        b.iter_custom(|iters| support::contended_2proc(iters, || futex.locked_increment(), || futex.count()));
    });
    let robust = Counted::shared_robust();
    g.bench_function("glibc_robust", |b| {
        b.iter_custom(|iters| support::contended_2proc(iters, || robust.locked_increment(), || robust.count()));
    });
    let raw_sync = Counted::shared(RawSyncMutex::new());
    g.bench_function("raw_sync", |b| {
        b.iter_custom(|iters| support::contended_2proc(iters, || raw_sync.locked_increment(), || raw_sync.count()));
    });
    let m = shmproc::Mutex::new(0u64).expect("anonymous mutex");
    g.bench_function("shmproc_mutex", |b| {
        b.iter_custom(|iters| {
            support::contended_2proc(iters, || *m.lock().expect("lock") += 1, || *m.lock().expect("lock"))
        });
    });
    let v = shmproc::Value::new(0u64).expect("anonymous value");
    g.bench_function("shmproc_value", |b| {
        b.iter_custom(|iters| {
            support::contended_2proc(iters, || *v.lock().expect("lock") += 1, || v.get().expect("get"))
        });
    });
    g.finish();
}

fn process_start_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("process_start_join");
    g.bench_function("raw_fork_waitpid", |b| b.iter(support::raw_fork_waitpid));
    g.bench_function("shmproc_process", |b| {
        b.iter(|| {
            let p = shmproc::Process::new(|| {});
            p.start().expect("start");
            p.join().expect("join");
        });
    });
    g.finish();
}

fn segment_create_open_unlink(c: &mut Criterion) {
    const LEN: usize = 4096;
    let mut g = c.benchmark_group("segment_create_open_unlink");
    let name = support::segment_name();
    support::unlink_quietly(&name);
    g.bench_function("raw_syscalls", |b| {
        b.iter(|| support::raw_segment_cycle(&name, LEN));
    });
    let shm_name = format!("shmproc-bench-shm-{}", std::process::id());
    g.bench_function("shmproc_shared_memory", |b| {
        b.iter(|| {
            let created = shmproc::SharedMemory::create(&shm_name, LEN).expect("create");
            let attached = shmproc::SharedMemory::open(&shm_name).expect("open");
            drop(attached);
            created.unlink().expect("unlink");
        });
    });
    g.finish();
    support::unlink_quietly(&name);
}

criterion_group!(benches, lock_uncontended, lock_contended_2proc, process_start_join, segment_create_open_unlink);
criterion_main!(benches);
