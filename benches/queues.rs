//! Queues and pipes: shmproc against its floor (a raw atomic SPSC ring between two processes,
//! pipe(2)) and its peers (crossbeam ArrayQueue and rtrb on threads, an OS pipe, memcpy) in the
//! same run. `python3 benches/compare.py` turns the results into ratios.

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;

/// Capacity of every peer queue, in 8-byte messages (the raw ring has the same).
const CAP: usize = support::RING_SLOTS;

/// Retries `attempt` (spin, then yield) until it succeeds.
#[inline]
fn retry<T>(mut attempt: impl FnMut() -> Option<T>) -> T {
    let mut n = 0u32;
    loop {
        if let Some(v) = attempt() {
            return v;
        }
        if n < 128 {
            std::hint::spin_loop();
            n += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// Pushes `k` onto `q`, retrying (with the shared back-off) while it is full.
fn push_until_accepted(q: &ArrayQueue<u64>, k: u64) {
    let mut v = Some(k);
    retry(|| match q.push(v.take().expect("value present")) {
        Ok(()) => Some(()),
        Err(back) => {
            v = Some(back);
            None
        }
    });
}

fn crossbeam_1p1c(iters: u64) -> Duration {
    let q = ArrayQueue::<u64>::new(CAP);
    let mut sum = 0u64;
    let t = support::two_threads(
        iters,
        |n| {
            for k in 0..n {
                push_until_accepted(&q, k);
            }
        },
        |n| {
            for _ in 0..n {
                sum = sum.wrapping_add(retry(|| q.pop()));
            }
        },
    );
    assert_eq!(sum, (0..iters).sum::<u64>());
    t
}

fn rtrb_1p1c(iters: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(CAP);
    let mut sum = 0u64;
    let t = support::two_threads(
        iters,
        |n| {
            for k in 0..n {
                retry(|| tx.push(k).ok());
            }
        },
        |n| {
            for _ in 0..n {
                sum = sum.wrapping_add(retry(|| rx.pop().ok()));
            }
        },
    );
    assert_eq!(sum, (0..iters).sum::<u64>());
    t
}

/// Two producers and two consumers on one ArrayQueue: `iters` messages in all.
fn crossbeam_2p2c(iters: u64) -> Duration {
    let q = ArrayQueue::<u64>::new(CAP);
    let taken = AtomicU64::new(0);
    let sum = AtomicU64::new(0);
    let go = std::sync::Barrier::new(5);
    let half = iters / 2;
    let elapsed = std::thread::scope(|s| {
        let produce = |range: std::ops::Range<u64>| {
            go.wait();
            for k in range {
                push_until_accepted(&q, k);
            }
        };
        let consume = || {
            go.wait();
            let mut local = 0u64;
            // Claim a message before popping it, so the consumers stop at exactly `iters`.
            while taken.fetch_add(1, Ordering::Relaxed) < iters {
                local = local.wrapping_add(retry(|| q.pop()));
            }
            sum.fetch_add(local, Ordering::Relaxed);
        };
        let hs = [
            s.spawn(move || produce(0..half)),
            s.spawn(move || produce(half..iters)),
            s.spawn(consume),
            s.spawn(consume),
        ];
        go.wait();
        let start = Instant::now();
        for h in hs {
            h.join().expect("bench thread panicked");
        }
        start.elapsed()
    });
    assert_eq!(sum.into_inner(), (0..iters).sum::<u64>());
    elapsed
}

fn queue_1p1c(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_1p1c");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_spsc_ring_2proc", |b| {
        b.iter_custom(support::spsc_ring_2proc);
    });
    g.bench_function("os_pipe_2proc", |b| b.iter_custom(support::pipe_stream_2proc));
    g.bench_function("crossbeam_array_queue_2threads", |b| {
        b.iter_custom(crossbeam_1p1c);
    });
    g.bench_function("rtrb_2threads", |b| b.iter_custom(rtrb_1p1c));
    // The shmproc rows of this group are in benches/queue_ipc.rs.
    g.finish();
}

fn queue_2p2c(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_2p2c");
    g.throughput(Throughput::Elements(1));
    g.bench_function("crossbeam_array_queue_4threads", |b| {
        b.iter_custom(crossbeam_2p2c);
    });
    // The shmproc rows of this group are in benches/queue_ipc.rs.
    g.finish();
}

fn memcpy(c: &mut Criterion) {
    const LEN: usize = 1 << 20;
    let mut g = c.benchmark_group("memcpy");
    g.throughput(Throughput::Bytes(LEN as u64));
    let src = vec![0x5au8; LEN];
    let mut dst = vec![0u8; LEN];
    g.bench_function("1MiB", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)));
    });
    black_box(&dst);
    // The shmproc rows of this group are in benches/queue_ipc.rs.
    g.finish();
}

fn pipe_round_trip_2proc(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipe_round_trip_2proc");
    g.bench_function("pipe2", |b| b.iter_custom(support::pipe_round_trip_2proc));
    // The shmproc rows of this group are in benches/queue_ipc.rs.
    g.finish();
}

criterion_group!(benches, queue_1p1c, queue_2p2c, memcpy, pipe_round_trip_2proc);
criterion_main!(benches);
