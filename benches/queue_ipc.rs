//! shmproc's Queue and Pipe between processes: 1P/1C and 2P/2C 8-byte throughput, the wake-up
//! round trip of a blocked get, the Pipe round trip, and 1 MiB messages in bytes per second.
//!
//! The floors and peers (raw SPSC ring, crossbeam/rtrb, pipe(2), Python) live in
//! `benches/queues.rs`; the `*/local_*` entries here are small local floors measured in the same
//! run so that one `cargo bench --bench queue_ipc` gives ratios on its own.
#![allow(unsafe_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shmproc::{Pipe, Process, Queue};

/// A `T` in a `MAP_SHARED | MAP_ANONYMOUS` mapping (inherited by forked children), leaked.
fn shared<T: Sync>(value: T) -> &'static T {
    let len = std::num::NonZeroUsize::new(std::mem::size_of::<T>().max(1)).expect("non-zero");
    // SAFETY: a fresh anonymous mapping touches no existing memory.
    let p = unsafe {
        nix::sys::mman::mmap_anonymous(
            None,
            len,
            nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
            nix::sys::mman::MapFlags::MAP_SHARED,
        )
    }
    .expect("mmap");
    let t = p.as_ptr().cast::<T>();
    // SAFETY: the mapping is page aligned, large enough and ours alone.
    unsafe { t.write(value) };
    // SAFETY: initialised above, never unmapped (leaked), shared only through `Sync` access.
    unsafe { &*t }
}

/// Start/stop handshake between the measuring parent and its children.
struct Sync3 {
    ready: AtomicU32,
    go: AtomicU32,
    done: AtomicU32,
}

fn spin_until(mut f: impl FnMut() -> bool) {
    let mut n = 0u32;
    while !f() {
        n += 1;
        if n < 256 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Runs `children` (each given `iters`) in forked processes and `parent` here; the clock runs
/// from "all children ready" until the parent part returned and every child finished its part.
fn measure(iters: u64, children: Vec<Box<dyn FnOnce(u64) + Send>>, parent: impl FnOnce(u64)) -> Duration {
    let s = shared(Sync3 { ready: AtomicU32::new(0), go: AtomicU32::new(0), done: AtomicU32::new(0) });
    let n = children.len() as u32;
    let procs: Vec<Process> = children
        .into_iter()
        .map(|f| {
            let p = Process::new(move || {
                s.ready.fetch_add(1, Ordering::SeqCst);
                spin_until(|| s.go.load(Ordering::Acquire) == 1);
                f(iters);
                s.done.fetch_add(1, Ordering::SeqCst);
            })
            .daemon(true);
            p.start().expect("fork");
            p
        })
        .collect();
    spin_until(|| s.ready.load(Ordering::Acquire) == n);
    let t0 = Instant::now();
    s.go.store(1, Ordering::Release);
    parent(iters);
    spin_until(|| s.done.load(Ordering::Acquire) == n);
    let t = t0.elapsed();
    for p in procs {
        assert!(p.join_timeout(Duration::from_secs(60)).expect("join"), "child hung");
    }
    t
}

// ---- shmproc ---------------------------------------------------------------------------------

fn queue_1p1c(iters: u64) -> Duration {
    let q = Queue::<()>::with_capacity(64 << 10, 0).expect("queue");
    let qc = q.clone();
    measure(
        iters,
        vec![Box::new(move |n| {
            let mut buf = Vec::with_capacity(8);
            let mut sum = 0u64;
            for _ in 0..n {
                qc.get_bytes_into(&mut buf).expect("get");
                sum = sum.wrapping_add(u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")));
            }
            assert_eq!(sum, (0..n).sum::<u64>());
        })],
        |n| {
            for k in 0..n {
                q.put_bytes(&k.to_le_bytes()).expect("put");
            }
        },
    )
}

fn queue_1p1c_typed(iters: u64) -> Duration {
    let q = Queue::<u64>::with_capacity(64 << 10, 0).expect("queue");
    let qc = q.clone();
    measure(
        iters,
        vec![Box::new(move |n| {
            let mut sum = 0u64;
            for _ in 0..n {
                sum = sum.wrapping_add(qc.get().expect("get"));
            }
            assert_eq!(sum, (0..n).sum::<u64>());
        })],
        |n| {
            for k in 0..n {
                q.put(k).expect("put");
            }
        },
    )
}

/// Two producers and two consumers: three forked children and the measuring parent as the
/// second consumer, so that four processes share the cores, as the four threads of the
/// crossbeam floor do (a parent spinning idle beside four workers would be a fifth).
fn queue_2p2c(iters: u64) -> Duration {
    let q = Queue::<()>::with_capacity(64 << 10, 0).expect("queue");
    let half = iters / 2;
    let consume = move |q: &Queue<()>| {
        let mut buf = Vec::with_capacity(8);
        for _ in 0..half {
            q.get_bytes_into(&mut buf).expect("get");
        }
    };
    let mut kids: Vec<Box<dyn FnOnce(u64) + Send>> = Vec::new();
    for _ in 0..2 {
        let qp = q.clone();
        kids.push(Box::new(move |_| {
            for k in 0..half {
                qp.put_bytes(&k.to_le_bytes()).expect("put");
            }
        }));
    }
    let qc = q.clone();
    kids.push(Box::new(move |_| consume(&qc)));
    measure(iters, kids, |_| consume(&q))
}

fn now_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// Shared state of a wake-up latency measurement.
struct Wake {
    phase: AtomicU64,
    fired_at: AtomicU64,
    total_ns: AtomicU64,
}

/// The latency of waking a blocked waiter: the child blocks in `block(k)`; once it has surely
/// gone to sleep (50 µs later), the parent stamps the time and calls `fire(k)`; the child
/// stamps the time it returned. Returns the sum of (return - fire) over `iters` wake-ups.
fn wake_latency(iters: u64, block: impl Fn(u64) + Send + 'static, fire: impl Fn(u64)) -> Duration {
    let w = shared(Wake { phase: AtomicU64::new(0), fired_at: AtomicU64::new(0), total_ns: AtomicU64::new(0) });
    measure(
        iters,
        vec![Box::new(move |n| {
            for k in 0..n {
                w.phase.store(2 * k + 1, Ordering::SeqCst);
                block(k);
                let t1 = now_ns();
                w.total_ns.fetch_add(t1.saturating_sub(w.fired_at.load(Ordering::SeqCst)), Ordering::SeqCst);
                w.phase.store(2 * k + 2, Ordering::SeqCst);
            }
        })],
        |n| {
            for k in 0..n {
                spin_until(|| w.phase.load(Ordering::SeqCst) == 2 * k + 1);
                let t = now_ns();
                spin_until(|| now_ns() - t > 50_000);
                w.fired_at.store(now_ns(), Ordering::SeqCst);
                fire(k);
                spin_until(|| w.phase.load(Ordering::SeqCst) >= 2 * k + 2);
            }
        },
    );
    Duration::from_nanos(w.total_ns.load(Ordering::SeqCst))
}

/// Wake-up of a get blocked on an empty queue.
fn queue_wake(iters: u64) -> Duration {
    let q = Queue::<()>::with_capacity(4096, 0).expect("queue");
    let qc = q.clone();
    wake_latency(
        iters,
        move |_| {
            let mut buf = Vec::with_capacity(8);
            qc.get_bytes_into(&mut buf).expect("get");
        },
        |k| q.put_bytes(&k.to_le_bytes()).expect("put"),
    )
}

/// The floor: a bare FUTEX_WAIT woken by FUTEX_WAKE.
fn local_futex_wake(iters: u64) -> Duration {
    let word = shared(AtomicU32::new(0));
    wake_latency(
        iters,
        move |k| {
            while word.load(Ordering::Acquire) == k as u32 {
                futex_wait(word, k as u32);
            }
        },
        |k| {
            word.store(k as u32 + 1, Ordering::Release);
            futex_wake(word);
        },
    )
}

fn pipe_rtt(iters: u64) -> Duration {
    let (a, b) = Pipe::with_capacity::<u64>(true, 4096).expect("pipe");
    measure(
        iters,
        vec![Box::new(move |n| {
            let mut buf = [0u8; 8];
            for _ in 0..n {
                b.recv_bytes_into(&mut buf).expect("recv");
                b.send_bytes(&buf).expect("send");
            }
        })],
        |n| {
            let mut buf = [0u8; 8];
            for k in 0..n {
                a.send_bytes(&k.to_le_bytes()).expect("send");
                a.recv_bytes_into(&mut buf).expect("recv");
            }
        },
    )
}

const MIB: usize = 1 << 20;

fn queue_1mib(iters: u64) -> Duration {
    let q = Queue::<()>::with_capacity(4 * MIB, 0).expect("queue");
    let qc = q.clone();
    let msg = vec![0x5au8; MIB];
    measure(
        iters,
        vec![Box::new(move |n| {
            let mut buf = Vec::with_capacity(MIB);
            for _ in 0..n {
                qc.get_bytes_into(&mut buf).expect("get");
                black_box(&buf);
            }
        })],
        |n| {
            for _ in 0..n {
                q.put_bytes(&msg).expect("put");
            }
        },
    )
}

// ---- local floors ------------------------------------------------------------------------------

const RING: usize = 4096;

#[repr(C, align(128))]
struct Pad<T>(T);

struct RawRing {
    head: Pad<AtomicU64>,
    tail: Pad<AtomicU64>,
    buf: [AtomicU64; RING],
}

/// The floor: a raw atomic SPSC ring of u64 between two processes.
fn local_raw_ring(iters: u64) -> Duration {
    let r = shared(RawRing {
        head: Pad(AtomicU64::new(0)),
        tail: Pad(AtomicU64::new(0)),
        buf: [const { AtomicU64::new(0) }; RING],
    });
    measure(
        iters,
        vec![Box::new(move |n| {
            let mut head = 0u64;
            let mut tail = 0u64;
            let mut sum = 0u64;
            while head < n {
                if head == tail {
                    spin_until(|| {
                        tail = r.tail.0.load(Ordering::Acquire);
                        tail != head
                    });
                }
                sum = sum.wrapping_add(r.buf[head as usize % RING].load(Ordering::Relaxed));
                head += 1;
                r.head.0.store(head, Ordering::Release);
            }
            assert_eq!(sum, (0..n).sum::<u64>());
        })],
        |n| {
            let mut head = 0u64;
            for k in 0..n {
                if k - head == RING as u64 {
                    spin_until(|| {
                        head = r.head.0.load(Ordering::Acquire);
                        k - head < RING as u64
                    });
                }
                r.buf[k as usize % RING].store(k, Ordering::Relaxed);
                r.tail.0.store(k + 1, Ordering::Release);
            }
        },
    )
}

fn futex_wait(w: &AtomicU32, v: u32) {
    // SAFETY: FUTEX_WAIT on a live aligned word with no timeout.
    unsafe { nix::libc::syscall(nix::libc::SYS_futex, w.as_ptr(), nix::libc::FUTEX_WAIT, v, std::ptr::null::<u8>()) };
}

fn futex_wake(w: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live aligned word.
    unsafe { nix::libc::syscall(nix::libc::SYS_futex, w.as_ptr(), nix::libc::FUTEX_WAKE, 1) };
}

/// pipe(2) round trip of 8 bytes between two processes.
fn local_pipe2_rtt(iters: u64) -> Duration {
    let (r1, w1) = nix::unistd::pipe().expect("pipe");
    let (r2, w2) = nix::unistd::pipe().expect("pipe");
    measure(
        iters,
        vec![Box::new(move |n| {
            let mut b = [0u8; 8];
            for _ in 0..n {
                nix::unistd::read(&r1, &mut b).expect("read");
                nix::unistd::write(&w2, &b).expect("write");
            }
        })],
        |n| {
            let mut b = [0u8; 8];
            for k in 0..n {
                nix::unistd::write(&w1, &k.to_le_bytes()).expect("write");
                nix::unistd::read(&r2, &mut b).expect("read");
            }
        },
    )
}

// ---- groups ------------------------------------------------------------------------------------

fn groups(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_1p1c");
    g.throughput(Throughput::Elements(1));
    g.bench_function("shmproc_queue_2proc", |b| b.iter_custom(queue_1p1c));
    g.bench_function("shmproc_queue_typed_2proc", |b| b.iter_custom(queue_1p1c_typed));
    g.bench_function("local_raw_ring", |b| b.iter_custom(local_raw_ring));
    g.finish();

    let mut g = c.benchmark_group("queue_2p2c");
    g.throughput(Throughput::Elements(1));
    g.bench_function("shmproc_queue_4proc", |b| b.iter_custom(queue_2p2c));
    g.finish();

    let mut g = c.benchmark_group("queue_wake_rtt");
    // Each wake-up costs ~25 µs of wall time for a few µs measured: keep the sample small.
    g.sample_size(10);
    g.measurement_time(Duration::from_millis(300));
    g.warm_up_time(Duration::from_millis(100));
    g.bench_function("shmproc_get_wake", |b| b.iter_custom(queue_wake));
    g.bench_function("futex_wake", |b| b.iter_custom(local_futex_wake));
    g.finish();

    let mut g = c.benchmark_group("pipe_round_trip_2proc");
    g.bench_function("shmproc_pipe", |b| b.iter_custom(pipe_rtt));
    g.bench_function("local_pipe2", |b| b.iter_custom(local_pipe2_rtt));
    g.finish();

    let mut g = c.benchmark_group("memcpy");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("shmproc_queue_bytes_1MiB", |b| b.iter_custom(queue_1mib));
    let src = vec![1u8; MIB];
    let mut dst = vec![0u8; MIB];
    g.bench_function("local_1MiB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    g.finish();
}

criterion_group!(benches, groups);
criterion_main!(benches);
