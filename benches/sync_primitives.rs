//! Semaphore, Event and Barrier between processes, with their floor in the same run: an Event
//! set→wake round trip against a raw futex wake round trip (target ≤ 1.2×), Semaphore
//! acquire+release uncontended, and a 2-process Barrier cycle. Python's figures for the same
//! cases come from `benches/python_peers.py`; `python3 benches/compare.py` prints the ratios.
//!
//! Group and case names are the ones `benches/compare.py` reads.

#[path = "support/mod.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};

fn wake_round_trip_2proc(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake_round_trip_2proc");
    g.bench_function("raw_futex", |b| b.iter_custom(support::futex_wake_round_trip));
    let (ping, pong) = (shmproc::Event::new().expect("event"), shmproc::Event::new().expect("event"));
    g.bench_function("shmproc_event", |b| {
        b.iter_custom(|iters| {
            support::two_process(
                iters,
                |n| {
                    for _ in 0..n {
                        ping.set();
                        pong.wait();
                        pong.clear();
                    }
                },
                |n| {
                    for _ in 0..n {
                        ping.wait();
                        ping.clear();
                        pong.set();
                    }
                },
            )
        })
    });
    g.finish();
}

fn semaphore_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("semaphore_uncontended");
    let sem = shmproc::Semaphore::new(1).expect("semaphore");
    g.bench_function("shmproc_semaphore", |b| {
        b.iter(|| {
            sem.acquire();
            sem.release().expect("a released unit fits");
        })
    });
    g.finish();
}

fn barrier_cycle_2proc(c: &mut Criterion) {
    let mut g = c.benchmark_group("barrier_cycle_2proc");
    let barrier = shmproc::Barrier::new(2).expect("barrier");
    g.bench_function("shmproc_barrier", |b| {
        b.iter_custom(|iters| {
            support::two_process(
                iters,
                |n| {
                    for _ in 0..n {
                        barrier.wait().expect("barrier not broken");
                    }
                },
                |n| {
                    for _ in 0..n {
                        barrier.wait().expect("barrier not broken");
                    }
                },
            )
        })
    });
    g.finish();
}

criterion_group!(benches, wake_round_trip_2proc, semaphore_uncontended, barrier_cycle_2proc);
criterion_main!(benches);
