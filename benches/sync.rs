//! Blocking primitives (Event, Condition, Semaphore, Barrier): shmproc against its floor, a raw
//! futex wake round trip between two processes, in the same run. `python3 benches/compare.py`
//! turns the results into ratios.

#[path = "support/mod.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};

fn wake_round_trip_2proc(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake_round_trip_2proc");
    g.bench_function("raw_futex", |b| b.iter_custom(support::futex_wake_round_trip));
    // shmproc: let (ping, pong) = (shmproc::Event::new().expect("event"), shmproc::Event::new().expect("event"));
    // shmproc: g.bench_function("shmproc_event", |b| b.iter_custom(|iters| {
    // shmproc:     support::two_process(iters,
    // shmproc:         |n| for _ in 0..n { ping.set(); pong.wait(); pong.clear(); },
    // shmproc:         |n| for _ in 0..n { ping.wait(); ping.clear(); pong.set(); })
    // shmproc: }));
    g.finish();
}

fn cache_line_round_trip_2proc(c: &mut Criterion) {
    // Not a floor of any shmproc row: the spinning lower bound that tells how far apart the two
    // cores are in this run (cross-core figures drift up to 8x between runs on this machine).
    let mut g = c.benchmark_group("cache_line_round_trip_2proc");
    g.bench_function("shared_word", |b| b.iter_custom(support::shared_word_round_trip));
    g.finish();
}

criterion_group!(benches, wake_round_trip_2proc, cache_line_round_trip_2proc);
criterion_main!(benches);
