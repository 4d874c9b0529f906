//! The cross-core cache-line round trip between two processes: not a floor of any shmproc row,
//! but the spinning lower bound that tells how far apart the two cores are in this run
//! (cross-core figures drift up to 8x between runs on this machine). The blocking primitives
//! and their futex floor are in `benches/sync_primitives.rs`.

#[path = "support/mod.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};

fn cache_line_round_trip_2proc(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_line_round_trip_2proc");
    g.bench_function("shared_word", |b| b.iter_custom(support::shared_word_round_trip));
    g.finish();
}

criterion_group!(benches, cache_line_round_trip_2proc);
criterion_main!(benches);
