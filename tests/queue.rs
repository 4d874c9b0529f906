//! Queue, SimpleQueue and JoinableQueue, across processes: CPython's queue tests ported
//! (FIFO, qsize, empty/full, timeouts, close, join/task_done), plus many producers and consumers
//! with no loss and no duplicates, messages from 0 B to 1 MiB, and wrap-around.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Watchdog, fork_lock, join_ok, start, unique_name};
use shmproc::{Error, JoinableQueue, Process, Queue, SimpleQueue};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn fifo_order_in_one_process() {
    let q = Queue::<u32>::new().unwrap();
    for i in 0..1000 {
        q.put(i).unwrap();
    }
    assert_eq!(q.qsize(), 1000);
    for i in 0..1000 {
        assert_eq!(q.get().unwrap(), i);
    }
    assert!(q.is_empty());
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

#[test]
fn fifo_order_across_processes() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<(u32, String)>::with_capacity(4096, 0).unwrap();
    let p = start({
        let q = q.clone();
        move || {
            for i in 0..20_000u32 {
                q.put((i, format!("m{i}"))).unwrap();
            }
        }
    });
    for i in 0..20_000u32 {
        assert_eq!(q.get_timeout(LIMIT).unwrap(), (i, format!("m{i}")));
    }
    join_ok(&p);
}

#[test]
fn qsize_empty_full_with_maxsize() {
    let q = Queue::<u8>::with_capacity(4096, 3).unwrap();
    assert!(q.is_empty());
    assert!(!q.is_full());
    assert_eq!(q.qsize(), 0);
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.qsize(), 2);
    assert!(!q.is_empty());
    q.put(3).unwrap();
    assert!(q.is_full());
    let e = q.try_put(4).unwrap_err();
    assert!(e.is_full());
    assert_eq!(e.into_value(), 4);
    assert_eq!(q.get().unwrap(), 1);
    assert!(!q.is_full());
    q.try_put(4).unwrap();
    assert_eq!(q.qsize(), 3);
}

#[test]
fn full_by_bytes() {
    // 4 cells of 64 bytes: four 1-cell messages fill it.
    let q = Queue::<Vec<u8>>::with_capacity(256, 0).unwrap();
    for _ in 0..4 {
        q.try_put(vec![7u8; 40]).unwrap();
    }
    assert!(q.is_full());
    assert!(matches!(q.try_put(vec![1]).unwrap_err().error(), Error::Full));
    assert_eq!(q.get().unwrap(), vec![7u8; 40]);
    q.try_put(vec![1]).unwrap();
}

#[test]
fn get_timeout_on_empty_fails_no_sooner_than_timeout() {
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<u8>::new().unwrap();
    let t0 = Instant::now();
    assert!(matches!(q.get_timeout(Duration::from_millis(100)), Err(Error::Empty)));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    // try_get never waits (if it did, the watchdog turns the hang into a failure).
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

#[test]
fn put_timeout_on_full_fails_with_full() {
    let q = Queue::<u8>::with_capacity(256, 1).unwrap();
    q.put(1).unwrap();
    let t0 = Instant::now();
    let e = q.put_timeout(2, Duration::from_millis(100)).unwrap_err();
    assert!(t0.elapsed() >= Duration::from_millis(100));
    assert!(e.is_full(), "{e}");
    assert_eq!(e.into_value(), 2);
}

#[test]
fn blocked_put_resumes_when_a_child_gets() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<u32>::with_capacity(256, 2).unwrap();
    q.put(0).unwrap();
    q.put(1).unwrap();
    let p = start({
        let q = q.clone();
        move || {
            std::thread::sleep(Duration::from_millis(50));
            for i in 0..100 {
                assert_eq!(q.get_timeout(LIMIT).unwrap(), i);
            }
        }
    });
    for i in 2..100 {
        q.put_timeout(i, LIMIT).unwrap();
    }
    join_ok(&p);
}

#[test]
fn message_too_large_is_an_error_at_put_and_loses_nothing() {
    let q = Queue::<Vec<u8>>::with_capacity(1024, 0).unwrap();
    q.put(vec![1, 2, 3]).unwrap();
    let max = q.max_message_len();
    assert_eq!(max, 1024);
    match q.put_bytes(&vec![0u8; max + 1]) {
        Err(Error::MessageTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("{other:?}"),
    }
    // The largest message fits once the queue is empty.
    assert_eq!(q.get().unwrap(), vec![1, 2, 3]);
    q.put_bytes(&vec![9u8; max]).unwrap();
    assert_eq!(q.get_bytes().unwrap(), vec![9u8; max]);
}

#[test]
fn close_semantics() {
    let q = Queue::<u32>::new().unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.close();
    q.close();
    assert!(q.is_closed());
    assert!(q.try_put(3).unwrap_err().is_closed());
    assert!(matches!(q.put(3), Err(Error::Closed)));
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 2);
    assert!(matches!(q.get(), Err(Error::Closed)));
    assert!(matches!(q.try_get(), Err(Error::Closed)));
}

#[test]
fn close_wakes_a_blocked_get_in_another_process() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<u32>::new().unwrap();
    let p = start({
        let q = q.clone();
        move || assert!(matches!(q.get(), Err(Error::Closed)))
    });
    let pid = p.pid().unwrap();
    assert!(common::await_futex_sleep(pid, LIMIT / 2), "the child never slept in its get");
    q.close();
    join_ok(&p);
}

#[test]
fn bytes_api_and_reused_buffer() {
    let q = Queue::<()>::new().unwrap();
    q.put_bytes(b"").unwrap();
    q.put_bytes(b"hello").unwrap();
    q.try_put_bytes(&[1u8; 300]).unwrap();
    let mut buf = Vec::with_capacity(1024);
    assert_eq!(q.get_bytes_into(&mut buf).unwrap(), 0);
    assert!(buf.is_empty());
    assert_eq!(q.try_get_bytes_into(&mut buf).unwrap(), 5);
    assert_eq!(&buf, b"hello");
    assert_eq!(q.get_bytes_into_timeout(&mut buf, LIMIT).unwrap(), 300);
    assert_eq!(buf, vec![1u8; 300]);
    assert!(matches!(q.get_bytes_timeout(Duration::from_millis(1)), Err(Error::Empty)));
}

#[test]
fn put_many_get_many() {
    let q = Queue::<u64>::new().unwrap();
    assert_eq!(q.put_many(0..100).unwrap(), 100);
    let a = q.get_many(60).unwrap();
    assert_eq!(a, (0..60).collect::<Vec<_>>());
    let b = q.get_many(1000).unwrap();
    assert_eq!(b, (60..100).collect::<Vec<_>>());
    assert!(q.get_many(0).unwrap().is_empty());
}

#[test]
fn codec_error_for_wrong_message() {
    let q = Queue::<String>::new().unwrap();
    q.put_bytes(&[0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(q.get(), Err(Error::Codec(_))));
    // The bad message was consumed; the queue goes on.
    q.put("ok".into()).unwrap();
    assert_eq!(q.get().unwrap(), "ok");
}

#[test]
fn messages_from_0_bytes_to_1_mib_across_processes() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let sizes: Vec<usize> =
        [0, 1, 7, 8, 55, 56, 63, 64, 65, 127, 128, 1000, 4095, 4096, 65_536, 300_000, 1 << 20].to_vec();
    let q = Queue::<()>::with_capacity(2 << 20, 0).unwrap();
    let p = start({
        let q = q.clone();
        let sizes = sizes.clone();
        move || {
            for round in 0..3u8 {
                for &n in &sizes {
                    let msg: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(round)).collect();
                    q.put_bytes(&msg).unwrap();
                }
            }
        }
    });
    let mut buf = Vec::new();
    for round in 0..3u8 {
        for &n in &sizes {
            assert_eq!(q.get_bytes_into_timeout(&mut buf, LIMIT).unwrap(), n);
            assert!(buf.iter().enumerate().all(|(i, b)| *b == (i as u8).wrapping_mul(31).wrapping_add(round)));
        }
    }
    join_ok(&p);
}

/// Every length around the inline limit (8 bytes travel in the cell's metadata word, 9 and more
/// in the data area), through each way of getting a message, with distinct bytes.
#[test]
fn every_length_around_the_inline_limit_round_trips() {
    let q = Queue::<Vec<u8>>::with_capacity(4096, 0).unwrap();
    let msg = |n: usize| -> Vec<u8> { (0..n).map(|i| (i as u8).wrapping_mul(37).wrapping_add(n as u8)).collect() };
    let mut buf = vec![0xEE; 3];
    for n in 0..=70 {
        q.put_bytes(&msg(n)).unwrap();
        assert_eq!(q.try_get_bytes().unwrap(), msg(n), "get_bytes, {n} bytes");
        q.put_bytes(&msg(n)).unwrap();
        assert_eq!(q.try_get_bytes_into(&mut buf).unwrap(), n);
        assert_eq!(buf, msg(n), "get_bytes_into, {n} bytes");
        // Typed: postcard's length prefix makes the encoding n + 1 bytes.
        q.put(msg(n)).unwrap();
        assert_eq!(q.try_get().unwrap(), msg(n), "typed, {n} bytes");
    }
    assert!(matches!(q.try_get_bytes(), Err(Error::Empty)));
}

#[test]
fn wrap_around_with_variable_sizes() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    // A small ring (16 cells) and messages of 0..300 bytes: wraps hundreds of times, messages
    // straddle the end of the ring.
    let q = Queue::<Vec<u8>>::with_capacity(1024, 0).unwrap();
    let p = start({
        let q = q.clone();
        move || {
            for i in 0..5000usize {
                let n = (i * 37) % 300;
                q.put(vec![(i % 251) as u8; n]).unwrap();
            }
        }
    });
    for i in 0..5000usize {
        let n = (i * 37) % 300;
        assert_eq!(q.get_timeout(LIMIT).unwrap(), vec![(i % 251) as u8; n], "message {i}");
    }
    join_ok(&p);
}

/// Producers put `(producer, seq)` pairs; consumers gather what they got and send it back.
#[test]
fn many_producers_many_consumers_no_loss_no_duplicates() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    const PRODUCERS: u64 = 3;
    const CONSUMERS: usize = 3;
    const PER: u64 = 20_000;
    let q = Queue::<(u64, u64)>::with_capacity(2048, 0).unwrap();
    let results = Queue::<Vec<(u64, u64)>>::with_capacity(4 << 20, 0).unwrap();
    let mut kids = Vec::new();
    for c in 0..CONSUMERS {
        let (q, results) = (q.clone(), results.clone());
        kids.push(start(move || {
            let mut got = Vec::new();
            loop {
                match q.get_timeout(LIMIT) {
                    Ok(v) => got.push(v),
                    Err(Error::Closed) => break,
                    Err(e) => panic!("consumer {c}: {e}"),
                }
            }
            results.put(got).unwrap();
        }));
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let q = q.clone();
        producers.push(start(move || {
            for s in 0..PER {
                q.put((p, s)).unwrap();
            }
        }));
    }
    for p in &producers {
        join_ok(p);
    }
    q.close();
    let mut all = Vec::new();
    for _ in 0..CONSUMERS {
        let got = results.get_timeout(LIMIT).unwrap();
        // FIFO per producer, as each consumer saw it.
        for p in 0..PRODUCERS {
            let seqs: Vec<u64> = got.iter().filter(|(pp, _)| *pp == p).map(|(_, s)| *s).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "per-producer order broken");
        }
        all.extend(got);
    }
    for k in &kids {
        join_ok(k);
    }
    assert_eq!(all.len() as u64, PRODUCERS * PER, "count");
    let set: BTreeSet<_> = all.iter().copied().collect();
    assert_eq!(set.len(), all.len(), "duplicates");
    let sum: u64 = all.iter().map(|(p, s)| p * 1_000_003 + s).sum();
    let want: u64 = (0..PRODUCERS).flat_map(|p| (0..PER).map(move |s| p * 1_000_003 + s)).sum();
    assert_eq!(sum, want, "checksum");
}

#[test]
fn threads_share_a_queue() {
    let q = Queue::<u64>::with_capacity(1024, 0).unwrap();
    let n = 4u64;
    let per = 10_000u64;
    std::thread::scope(|s| {
        for t in 0..n {
            let q = &q;
            s.spawn(move || {
                for i in 0..per {
                    q.put(t * per + i).unwrap();
                }
            });
        }
        let mut sum = 0;
        for _ in 0..n * per {
            sum += q.get_timeout(LIMIT).unwrap();
        }
        assert_eq!(sum, (0..n * per).sum::<u64>());
    });
}

#[test]
fn named_queue_create_open_type_checked() {
    let name = unique_name("queue");
    let q = Queue::<u32>::create(&name, 4096, 0).unwrap();
    assert_eq!(q.name(), Some(name.as_str()));
    assert!(matches!(Queue::<u32>::create(&name, 4096, 0), Err(Error::AlreadyExists { .. })));
    let o = Queue::<u32>::open(&name).unwrap();
    o.put(5).unwrap();
    assert_eq!(q.get().unwrap(), 5);
    assert!(matches!(Queue::<String>::open(&name), Err(Error::WrongType { .. })));
    assert!(matches!(JoinableQueue::<u32>::open(&name), Err(Error::WrongType { .. })));
    assert!(matches!(shmproc::Mutex::<u32>::open(&name), Err(Error::WrongKind { .. })));
    q.unlink().unwrap();
    assert!(matches!(Queue::<u32>::open(&name), Err(Error::NotFound { .. })));
    // Handles keep working after unlink.
    o.put(6).unwrap();
    assert_eq!(q.get().unwrap(), 6);
}

#[test]
fn named_queue_from_a_child() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let name = unique_name("queue-child");
    let q = Queue::<String>::create(&name, 4096, 0).unwrap();
    let p = start({
        let name = name.clone();
        move || {
            let q = Queue::<String>::open(&name).unwrap();
            q.put("from child".into()).unwrap();
        }
    });
    assert_eq!(q.get_timeout(LIMIT).unwrap(), "from child");
    join_ok(&p);
    q.unlink().unwrap();
}

#[test]
fn joinable_queue_join_and_task_done_across_processes() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = JoinableQueue::<u32>::new().unwrap();
    let done = Queue::<u32>::new().unwrap();
    assert!(q.try_join());
    q.join().unwrap();
    for i in 0..50 {
        q.put(i).unwrap();
    }
    assert!(!q.try_join());
    assert!(!q.join_timeout(Duration::from_millis(20)).unwrap());
    let p = start({
        let (q, done) = (q.clone(), done.clone());
        move || {
            for _ in 0..50 {
                let v = q.get_timeout(LIMIT).unwrap();
                done.put(v).unwrap();
                q.task_done().unwrap();
            }
        }
    });
    assert!(q.join_timeout(LIMIT).unwrap());
    // Every item was processed before join returned.
    assert_eq!(done.qsize(), 50);
    join_ok(&p);
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
}

#[test]
fn joinable_failed_put_does_not_count() {
    let q = JoinableQueue::<u8>::with_capacity(256, 1).unwrap();
    q.put(1).unwrap();
    assert!(q.try_put(2).unwrap_err().is_full());
    assert_eq!(q.get().unwrap(), 1);
    q.task_done().unwrap();
    assert!(q.try_join());
}

#[test]
fn joinable_put_many_counts_one_task_per_item() {
    let q = JoinableQueue::<u8>::new().unwrap();
    assert_eq!(q.put_many([1, 2, 3]).unwrap(), 3);
    for _ in 0..3 {
        q.get().unwrap();
        assert!(!q.try_join(), "join() must wait for every item put_many put");
        q.task_done().unwrap();
    }
    assert!(q.try_join());
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
}

#[test]
fn simple_queue_try_put_and_put_timeout_give_the_value_back_when_full() {
    let q = SimpleQueue::<Vec<u8>>::with_capacity(256).unwrap();
    let mut n = 0;
    while q.try_put(vec![n; 40]).is_ok() {
        n += 1;
    }
    assert!(n > 0);
    let e = q.try_put(vec![9; 40]).unwrap_err();
    assert!(e.is_full());
    assert_eq!(e.into_value(), vec![9; 40]);
    let t0 = std::time::Instant::now();
    let e = q.put_timeout(vec![8; 40], Duration::from_millis(50)).unwrap_err();
    assert!(e.is_full() && t0.elapsed() >= Duration::from_millis(50));
    assert_eq!(q.get().unwrap(), vec![0; 40]);
    q.put_timeout(vec![7; 40], Duration::from_millis(50)).unwrap();
}

#[test]
fn simple_queue_across_processes() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = SimpleQueue::<String>::new().unwrap();
    assert!(q.is_empty());
    let p = start({
        let q = q.clone();
        move || {
            let s = q.get().unwrap();
            q.put(s.to_uppercase()).unwrap();
        }
    });
    q.put("abc".into()).unwrap();
    join_ok(&p);
    assert_eq!(q.get_timeout(LIMIT).unwrap(), "ABC");
    q.close();
    assert!(matches!(q.put("x".into()), Err(Error::Closed)));
    assert!(matches!(q.get(), Err(Error::Closed)));
}

#[test]
fn queue_in_a_forked_child_of_a_child() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<u32>::new().unwrap();
    q.put(0).unwrap();
    let p = start({
        let q = q.clone();
        move || {
            // The child's registry slot is its own, not its parent's.
            assert_eq!(q.get().unwrap(), 0);
            let g = Process::new({
                let q = q.clone();
                move || q.put(2).unwrap()
            });
            g.start().unwrap();
            q.put(1).unwrap();
            assert!(g.join_timeout(Duration::from_secs(30)).unwrap());
            assert_eq!(g.exitcode(), Some(0));
        }
    });
    join_ok(&p);
    let mut got = vec![q.get_timeout(LIMIT).unwrap(), q.get_timeout(LIMIT).unwrap()];
    got.sort();
    assert_eq!(got, vec![1, 2]);
}
