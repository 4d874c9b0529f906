//! Pipe and Connection across processes: CPython's connection tests ported (send/recv, bytes,
//! recv_bytes_into, poll, EOF on peer close or death, directions), and `wait`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Watchdog, fork_lock, join_ok, park_forever, start, unique_name, wait_for};
use shmproc::{Error, Pipe, Queue, Waitable, wait};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn duplex_ping_pong_across_processes() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let (a, b) = Pipe::new::<(u32, String)>(true).unwrap();
    let p = start(move || {
        for _ in 0..1000 {
            let (n, s) = b.recv().unwrap();
            b.send(&(n + 1, s + "!")).unwrap();
        }
    });
    for i in 0..1000 {
        a.send(&(i, "x".into())).unwrap();
        assert_eq!(a.recv_timeout(LIMIT).unwrap(), (i + 1, "x!".to_string()));
    }
    join_ok(&p);
}

#[test]
fn simplex_directions() {
    let (r, w) = Pipe::new::<u8>(false).unwrap();
    assert!(r.readable() && !r.writable());
    assert!(w.writable() && !w.readable());
    assert!(matches!(r.send(&1), Err(Error::WrongDirection("read-only"))));
    assert!(matches!(w.recv(), Err(Error::WrongDirection("write-only"))));
    assert!(matches!(w.poll(Some(Duration::ZERO)), Err(Error::WrongDirection(_))));
    w.send(&9).unwrap();
    assert_eq!(r.recv().unwrap(), 9);
}

#[test]
fn bytes_messages_keep_boundaries() {
    let (a, b) = Pipe::new::<()>(true).unwrap();
    a.send_bytes(b"").unwrap();
    a.send_bytes(b"abc").unwrap();
    a.send_bytes(&[7u8; 5000]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"");
    assert_eq!(b.try_recv_bytes().unwrap(), b"abc");
    assert_eq!(b.recv_bytes_timeout(LIMIT).unwrap(), vec![7u8; 5000]);
    assert!(matches!(b.try_recv_bytes(), Err(Error::Empty)));
}

#[test]
fn recv_bytes_into_and_buffer_too_short() {
    let (a, b) = Pipe::new::<()>(true).unwrap();
    a.send_bytes(b"hello").unwrap();
    a.send_bytes(b"a longer message").unwrap();
    a.send_bytes(b"next").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    match b.recv_bytes_into(&mut buf) {
        Err(Error::BufferTooShort(whole)) => assert_eq!(whole, b"a longer message"),
        other => panic!("{other:?}"),
    }
    // The long message was consumed; the next one is intact.
    assert_eq!(b.recv_bytes_into_timeout(&mut buf, LIMIT).unwrap(), 4);
    assert_eq!(&buf[..4], b"next");
}

/// The non-blocking and timed forms of send and receive: on a full ring `try_send` fails with
/// `Full` at once, `send_timeout` no sooner than its timeout; both succeed once there is room.
#[test]
fn try_and_timeout_forms_of_send_and_receive() {
    // Simplex, as Python: the first end reads, the second writes.
    let (b, a) = Pipe::with_capacity::<u64>(false, 256).unwrap();
    let mut sent = 0u64;
    while a.try_send(&sent).is_ok() {
        sent += 1;
    }
    assert!(sent > 0, "an empty ring took no message");
    assert!(matches!(a.try_send(&0), Err(Error::Full)));
    assert!(matches!(a.try_send_bytes(b"x"), Err(Error::Full)));
    let t0 = Instant::now();
    assert!(matches!(a.send_timeout(&0, Duration::from_millis(50)), Err(Error::Full)));
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert!(matches!(a.send_bytes_timeout(b"x", Duration::from_millis(10)), Err(Error::Full)));
    let mut buf = [0u8; 16];
    for k in 0..sent {
        let n = b.try_recv_bytes_into(&mut buf).unwrap();
        assert_eq!(postcard::from_bytes::<u64>(&buf[..n]).unwrap(), k);
    }
    assert!(matches!(b.try_recv_bytes_into(&mut buf), Err(Error::Empty)));
    a.send_timeout(&7, Duration::from_millis(50)).unwrap();
    a.try_send_bytes(b"y").unwrap();
    assert_eq!(b.try_recv().unwrap(), 7);
    assert_eq!(b.try_recv_bytes().unwrap(), b"y");
}

#[test]
fn poll_does_not_consume_and_waits_its_timeout() {
    let (a, b) = Pipe::new::<u32>(true).unwrap();
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    let t0 = Instant::now();
    assert!(!b.poll(Some(Duration::from_millis(100))).unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(100));
    a.send(&1).unwrap();
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert!(b.poll(None).unwrap());
    assert_eq!(b.recv().unwrap(), 1);
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
}

#[test]
fn recv_timeout_on_empty_fails_no_sooner_than_timeout() {
    let (a, b) = Pipe::new::<u32>(true).unwrap();
    let t0 = Instant::now();
    assert!(matches!(b.recv_timeout(Duration::from_millis(100)), Err(Error::Empty)));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    drop(a);
}

#[test]
fn eof_after_peer_close_drains_first() {
    let (a, b) = Pipe::new::<u32>(true).unwrap();
    a.send(&1).unwrap();
    a.send(&2).unwrap();
    a.close();
    a.close();
    assert!(a.is_closed());
    assert!(matches!(a.send(&3), Err(Error::Closed)));
    assert!(matches!(a.recv(), Err(Error::Closed)));
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(b.recv().unwrap(), 1);
    assert_eq!(b.recv().unwrap(), 2);
    assert!(matches!(b.recv(), Err(Error::Eof)));
    assert!(matches!(b.recv_bytes(), Err(Error::Eof)));
    // EOF counts as readable for poll, as in Python.
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    // Sending to a closed peer fails.
    assert!(matches!(b.send(&4), Err(Error::Closed)));
}

#[test]
fn eof_wakes_a_blocked_recv_when_the_peer_closes_in_another_process() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let (a, b) = Pipe::new::<u32>(true).unwrap();
    let p = start(move || {
        b.send(&7).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        b.close();
    });
    assert_eq!(a.recv_timeout(LIMIT).unwrap(), 7);
    assert!(matches!(a.recv_timeout(LIMIT), Err(Error::Eof)));
    join_ok(&p);
}

#[test]
fn eof_when_the_peer_dies() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let (a, b) = Pipe::new::<u32>(true).unwrap();
    let p = start(move || {
        b.send(&1).unwrap();
        park_forever();
    });
    assert_eq!(a.recv_timeout(LIMIT).unwrap(), 1);
    p.kill().unwrap();
    assert!(p.join_timeout(LIMIT).unwrap());
    // recv never hangs on a dead peer: EOF (bounded here only to make a failure visible).
    assert!(matches!(a.recv_timeout(LIMIT), Err(Error::Eof)));
    assert!(a.poll(Some(Duration::from_secs(5))).unwrap());
}

#[test]
fn send_to_a_dead_reader_fails_instead_of_hanging() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let (a, b) = Pipe::with_capacity::<()>(true, 256).unwrap();
    let p = start(move || {
        b.send_bytes(b"hi").unwrap();
        park_forever();
    });
    assert_eq!(a.recv_bytes_timeout(LIMIT).unwrap(), b"hi");
    p.kill().unwrap();
    assert!(p.join_timeout(LIMIT).unwrap());
    let mut sent = 0;
    let err = loop {
        match a.send_bytes(&[0u8; 64]) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100, "the ring should be full long before");
    };
    assert!(matches!(err, Error::Closed), "{err}");
}

#[test]
fn messages_up_to_1_mib() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let (a, b) = Pipe::new::<()>(true).unwrap();
    let p = start(move || {
        for n in [0usize, 1, 100, 4096, 100_000, 1 << 20] {
            let m = b.recv_bytes().unwrap();
            assert_eq!(m.len(), n);
            assert!(m.iter().enumerate().all(|(i, x)| *x == i as u8));
            b.send_bytes(&m).unwrap();
        }
    });
    for n in [0usize, 1, 100, 4096, 100_000, 1 << 20] {
        let m: Vec<u8> = (0..n).map(|i| i as u8).collect();
        a.send_bytes(&m).unwrap();
        assert_eq!(a.recv_bytes_timeout(LIMIT).unwrap(), m);
    }
    join_ok(&p);
}

#[test]
fn wait_returns_the_ready_ones() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let (a1, b1) = Pipe::new::<u32>(true).unwrap();
    let (a2, b2) = Pipe::new::<u32>(true).unwrap();
    let q = Queue::<u32>::new().unwrap();
    let objs: [&dyn Waitable; 3] = [&a1, &a2, &q];
    let t0 = Instant::now();
    assert!(wait(&objs, Some(Duration::from_millis(50))).is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(50));
    b2.send(&1).unwrap();
    assert_eq!(wait(&objs, Some(Duration::ZERO)), vec![1]);
    q.put(5).unwrap();
    assert_eq!(wait(&objs, None), vec![1, 2]);
    // Blocked wait woken by a child writing to the first and then the last object.
    assert_eq!(a2.recv().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 5);
    let p = start(move || {
        std::thread::sleep(Duration::from_millis(30));
        b1.send(&2).unwrap();
    });
    assert_eq!(wait(&objs, Some(LIMIT)), vec![0]);
    join_ok(&p);
    assert_eq!(a1.recv().unwrap(), 2);
    // A dead peer counts as ready (EOF).
    assert_eq!(wait(&objs, Some(LIMIT)), vec![0]);
    assert!(matches!(a1.recv(), Err(Error::Eof)));
}

#[test]
fn named_pipe_between_processes() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let name = unique_name("pipe");
    let (a, _b) = Pipe::create::<String>(&name, true, 4096).unwrap();
    assert!(matches!(Pipe::open::<u32>(&name), Err(Error::WrongType { .. })));
    let p = start({
        let name = name.clone();
        move || {
            let (_a, b) = Pipe::open::<String>(&name).unwrap();
            let s = b.recv().unwrap();
            b.send(&format!("{s}{s}")).unwrap();
        }
    });
    a.send(&"ab".into()).unwrap();
    assert_eq!(a.recv_timeout(LIMIT).unwrap(), "abab");
    join_ok(&p);
    a.unlink().unwrap();
}

// ---- wait over many objects -------------------------------------------------------------------

/// Runs `waiter` (a `wait` call) in a thread and, once that thread sleeps in the kernel, runs
/// `wake`; returns what `waiter` returned.
fn wake_while_asleep(waiter: impl FnOnce() -> Vec<usize> + Send, wake: impl FnOnce()) -> Vec<usize> {
    let tid = AtomicU32::new(0);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            tid.store(common::current_tid() as u32, Ordering::SeqCst);
            waiter()
        });
        let asleep = wait_for(LIMIT / 2, || {
            let t = tid.load(Ordering::SeqCst);
            t != 0 && common::in_futex_call(t as i32)
        });
        wake();
        let ready = h.join().unwrap();
        assert!(asleep, "the waiter never went to sleep");
        ready
    })
}

#[test]
fn wait_wakes_when_a_child_fills_the_last_of_five_queues() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let qs: Vec<Queue<u32>> = (0..5).map(|_| Queue::with_capacity(4096, 0).unwrap()).collect();
    let (go_rx, go_tx) = Pipe::new::<u8>(false).unwrap();
    let p = start({
        let last = qs[4].clone();
        move || {
            go_rx.recv().unwrap();
            last.put(42).unwrap();
        }
    });
    let ready = wake_while_asleep(
        || {
            let objs: Vec<&dyn Waitable> = qs.iter().map(|q| q as &dyn Waitable).collect();
            wait(&objs, Some(LIMIT))
        },
        || go_tx.send(&1).unwrap(),
    );
    assert_eq!(ready, vec![4]);
    assert_eq!(qs[4].get_timeout(LIMIT).unwrap(), 42);
    join_ok(&p);
}

#[test]
fn wait_over_connections_and_queues_wakes_on_the_one_made_ready() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q0 = Queue::<u32>::with_capacity(4096, 0).unwrap();
    let (c1, peer1) = Pipe::new::<u32>(true).unwrap();
    let q2 = Queue::<u32>::with_capacity(4096, 0).unwrap();
    let (c3, peer3) = Pipe::new::<u32>(false).unwrap();
    let (c4, peer4) = Pipe::new::<u32>(true).unwrap();
    let (go_rx, go_tx) = Pipe::new::<u8>(false).unwrap();
    let p = start(move || {
        go_rx.recv().unwrap();
        peer3.send(&7).unwrap();
        // Keep the other ends alive (and open) until the parent is done.
        go_rx.recv().unwrap();
        drop((peer1, peer4));
    });
    let ready = wake_while_asleep(|| wait(&[&q0, &c1, &q2, &c3, &c4], Some(LIMIT)), || go_tx.send(&1).unwrap());
    assert_eq!(ready, vec![3]);
    assert_eq!(c3.recv_timeout(LIMIT).unwrap(), 7);
    go_tx.send(&2).unwrap();
    join_ok(&p);
}

#[test]
fn wait_notices_a_peer_killed_while_it_sleeps() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q0 = Queue::<u32>::with_capacity(4096, 0).unwrap();
    let q1 = Queue::<u32>::with_capacity(4096, 0).unwrap();
    let (c, peer) = Pipe::new::<u32>(true).unwrap();
    let p = start(move || {
        peer.send(&1).unwrap();
        park_forever();
    });
    // The child has used its end (so it is its owner) once its message is here.
    assert_eq!(c.recv_timeout(LIMIT).unwrap(), 1);
    let ready = wake_while_asleep(
        || wait(&[&q0, &q1, &c], Some(LIMIT)),
        || {
            p.kill().unwrap();
            assert!(p.join_timeout(LIMIT).unwrap());
        },
    );
    assert_eq!(ready, vec![2]);
    assert!(matches!(c.recv_timeout(LIMIT), Err(Error::Eof)));
}

#[test]
fn wait_with_nothing_ready_times_out_no_sooner_than_asked() {
    let q = Queue::<u32>::with_capacity(4096, 0).unwrap();
    let (c, _peer) = Pipe::new::<u32>(true).unwrap();
    let (c2, _peer2) = Pipe::new::<u32>(true).unwrap();
    let t0 = Instant::now();
    assert!(wait(&[&c, &q, &c2], Some(Duration::from_millis(100))).is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(100));
    let t0 = Instant::now();
    assert!(wait(&[&q], Some(Duration::from_millis(100))).is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(100));
    // Nothing to wait on: sleeps out the timeout, as Python's does.
    let t0 = Instant::now();
    assert!(wait(&[], Some(Duration::from_millis(50))).is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert!(wait(&[&c, &q], Some(Duration::ZERO)).is_empty());
}

#[test]
fn wait_reports_an_object_passed_twice_at_both_indices() {
    let q = Queue::<u32>::with_capacity(4096, 0).unwrap();
    let other = Queue::<u32>::with_capacity(4096, 0).unwrap();
    let ready = wake_while_asleep(|| wait(&[&q, &other, &q], Some(LIMIT)), || q.put(1).unwrap());
    assert_eq!(ready, vec![0, 2]);
}

#[test]
fn wait_over_more_objects_than_one_kernel_sleep_takes() {
    let _w = Watchdog::new(LIMIT);
    // futex_waitv takes at most 128 words: the last of 130 queues is not slept on, but is looked
    // at between short sleeps.
    let qs: Vec<Queue<u32>> = (0..130).map(|_| Queue::with_capacity(256, 0).unwrap()).collect();
    let ready = wake_while_asleep(
        || {
            let objs: Vec<&dyn Waitable> = qs.iter().map(|q| q as &dyn Waitable).collect();
            wait(&objs, Some(LIMIT))
        },
        || qs[129].put(9).unwrap(),
    );
    assert_eq!(ready, vec![129]);
    assert_eq!(qs[129].get().unwrap(), 9);
    // And one that is slept on.
    let ready = wake_while_asleep(
        || {
            let objs: Vec<&dyn Waitable> = qs.iter().map(|q| q as &dyn Waitable).collect();
            wait(&objs, Some(LIMIT))
        },
        || qs[127].put(8).unwrap(),
    );
    assert_eq!(ready, vec![127]);
}
