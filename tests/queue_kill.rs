//! The kill -9 matrix: producers and consumers SIGKILLed at chosen points inside the ring
//! (feature `kill-points`) and at random instants. Survivors must receive every committed message
//! exactly once, in order per producer; at most the victim's one message is lost; the queue must
//! keep working (several laps of the ring through the victim's cells).
//!
//! Run with `cargo test --features kill-points --test queue_kill`.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "kill-points")]

mod common;

use std::time::Duration;

use common::{Watchdog, fork_lock};
use shmproc::{Error, KillPoint, Process, Queue, RawArray, set_kill_point};

const LIMIT: Duration = Duration::from_secs(60);

fn spawn(f: impl FnOnce() + Send + 'static) -> Process {
    let p = Process::new(f);
    p.start().expect("fork");
    p
}

fn join_code(p: &Process) -> i32 {
    assert!(p.join_timeout(LIMIT).expect("join"), "child did not finish");
    p.exitcode().expect("exit code")
}

/// A 150-byte message (3 cells in the data area) tagged `tag`.
fn msg(tag: u32) -> Vec<u8> {
    msg_of(tag, LARGE)
}

const LARGE: usize = 150;
/// Short enough to travel inline, in the cell's own metadata word.
const SMALL: usize = 8;

/// A `len`-byte message tagged `tag`.
fn msg_of(tag: u32, len: usize) -> Vec<u8> {
    let mut v = vec![(tag % 251) as u8; len];
    v[..4].copy_from_slice(&tag.to_le_bytes());
    v
}

fn tag_of(m: &[u8]) -> u32 {
    assert!(m.len() == LARGE || m.len() == SMALL, "message of {} bytes", m.len());
    let t = u32::from_le_bytes(m[..4].try_into().unwrap());
    assert!(m[4..].iter().all(|b| *b == (t % 251) as u8), "message {t} torn");
    t
}

const SIGKILL_EXIT: i32 = -9;

fn producer_killed_at(point: KillPoint, len: usize) {
    let msg = move |t| msg_of(t, len);
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    // 16 cells: the 203 messages below lap the ring ~38 times through the victim's cells.
    let q = Queue::<()>::with_capacity(1024, 0).unwrap();
    let victim = spawn({
        let q = q.clone();
        move || {
            q.put_bytes(&msg(0)).unwrap();
            q.put_bytes(&msg(1)).unwrap();
            set_kill_point(Some(point));
            q.put_bytes(&msg(2)).unwrap();
            // Never reached: the kill point fires inside this put.
            std::process::exit(3);
        }
    });
    assert_eq!(join_code(&victim), SIGKILL_EXIT);
    assert_eq!(tag_of(&q.get_bytes_timeout(LIMIT).unwrap()), 0);
    assert_eq!(tag_of(&q.get_bytes_timeout(LIMIT).unwrap()), 1);
    let survivor = spawn({
        let q = q.clone();
        move || {
            for t in 100..300 {
                q.put_bytes_timeout(&msg(t), LIMIT).unwrap();
            }
        }
    });
    let first = tag_of(&q.get_bytes_timeout(LIMIT).unwrap());
    let committed = point == KillPoint::ProducerAfterCommit;
    let mut next = 100;
    if committed {
        assert_eq!(first, 2, "a committed message must be delivered");
    } else {
        assert_eq!(first, 100, "an uncommitted message must never be delivered");
        next = 101;
    }
    for t in next..300 {
        assert_eq!(tag_of(&q.get_bytes_timeout(LIMIT).unwrap()), t);
    }
    assert_eq!(join_code(&survivor), 0);
    assert!(matches!(q.try_get_bytes(), Err(Error::Empty)));
    assert_eq!(q.qsize(), 0);
    q.put_bytes(&msg(7)).unwrap();
    assert_eq!(tag_of(&q.get_bytes().unwrap()), 7);
}

fn consumer_killed_at(point: KillPoint, len: usize) {
    let msg = move |t| msg_of(t, len);
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<()>::with_capacity(1024, 0).unwrap();
    for t in 0..4 {
        q.put_bytes(&msg(t)).unwrap();
    }
    let victim = spawn({
        let q = q.clone();
        move || {
            assert_eq!(tag_of(&q.get_bytes().unwrap()), 0);
            set_kill_point(Some(point));
            let _ = q.get_bytes();
            std::process::exit(3);
        }
    });
    assert_eq!(join_code(&victim), SIGKILL_EXIT);
    // Message 1 died with the victim; the rest is intact and in order.
    assert_eq!(tag_of(&q.get_bytes_timeout(LIMIT).unwrap()), 2);
    assert_eq!(tag_of(&q.get_bytes_timeout(LIMIT).unwrap()), 3);
    // Producers must get through the cells the victim never released, lap after lap, with a
    // live consumer in another process.
    let survivor = spawn({
        let q = q.clone();
        move || {
            for t in 100..300 {
                assert_eq!(tag_of(&q.get_bytes_timeout(LIMIT).unwrap()), t);
            }
        }
    });
    for t in 100..300 {
        q.put_bytes_timeout(&msg(t), LIMIT).unwrap();
    }
    assert_eq!(join_code(&survivor), 0);
    assert_eq!(q.qsize(), 0);
    q.put_bytes(&msg(7)).unwrap();
    assert_eq!(tag_of(&q.get_bytes().unwrap()), 7);
}

#[test]
fn producer_killed_after_intent() {
    producer_killed_at(KillPoint::ProducerIntent, LARGE);
}

#[test]
fn producer_killed_after_reserve() {
    producer_killed_at(KillPoint::ProducerAfterReserve, LARGE);
}

#[test]
fn producer_killed_mid_write() {
    producer_killed_at(KillPoint::ProducerMidWrite, LARGE);
}

#[test]
fn producer_killed_before_commit() {
    producer_killed_at(KillPoint::ProducerBeforeCommit, LARGE);
}

#[test]
fn producer_killed_after_commit() {
    producer_killed_at(KillPoint::ProducerAfterCommit, LARGE);
}

#[test]
fn consumer_killed_after_claim() {
    consumer_killed_at(KillPoint::ConsumerAfterClaim, LARGE);
}

#[test]
fn consumer_killed_mid_copy() {
    consumer_killed_at(KillPoint::ConsumerMidCopy, LARGE);
}

#[test]
fn consumer_killed_mid_release() {
    consumer_killed_at(KillPoint::ConsumerMidRelease, LARGE);
}

#[test]
fn consumer_killed_after_release() {
    consumer_killed_at(KillPoint::ConsumerAfterRelease, LARGE);
}

// Messages of at most 8 bytes travel inline (no data-area write or copy, one cell), so only
// the points around the reservation, the commit and the claim apply.

#[test]
fn inline_producer_killed_after_intent() {
    producer_killed_at(KillPoint::ProducerIntent, SMALL);
}

#[test]
fn inline_producer_killed_after_reserve() {
    producer_killed_at(KillPoint::ProducerAfterReserve, SMALL);
}

#[test]
fn inline_producer_killed_before_commit() {
    producer_killed_at(KillPoint::ProducerBeforeCommit, SMALL);
}

#[test]
fn inline_producer_killed_after_commit() {
    producer_killed_at(KillPoint::ProducerAfterCommit, SMALL);
}

#[test]
fn inline_consumer_killed_after_claim() {
    consumer_killed_at(KillPoint::ConsumerAfterClaim, SMALL);
}

#[test]
fn inline_consumer_killed_after_release() {
    consumer_killed_at(KillPoint::ConsumerAfterRelease, SMALL);
}

/// The inline get path that takes the message straight from the cell (no claim guard): a
/// consumer killed inside it, after its claim or after its release.
fn inline_consumer_killed_in_get_bytes_into(point: KillPoint) {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<()>::with_capacity(1024, 0).unwrap();
    for t in 0..4 {
        q.put_bytes(&msg_of(t, SMALL)).unwrap();
    }
    let victim = spawn({
        let q = q.clone();
        move || {
            let mut buf = Vec::new();
            q.get_bytes_into(&mut buf).unwrap();
            assert_eq!(tag_of(&buf), 0);
            set_kill_point(Some(point));
            let _ = q.get_bytes_into(&mut buf);
            std::process::exit(3);
        }
    });
    assert_eq!(join_code(&victim), SIGKILL_EXIT);
    // Message 1 died with the victim; the rest is intact, and the ring laps through its cell.
    assert_eq!(tag_of(&q.get_bytes_timeout(LIMIT).unwrap()), 2);
    assert_eq!(tag_of(&q.get_bytes_timeout(LIMIT).unwrap()), 3);
    let producer = spawn({
        let q = q.clone();
        move || {
            for t in 100..200 {
                q.put_bytes_timeout(&msg_of(t, SMALL), LIMIT).unwrap();
            }
        }
    });
    let mut buf = Vec::new();
    for t in 100..200 {
        q.get_bytes_into_timeout(&mut buf, LIMIT).unwrap();
        assert_eq!(tag_of(&buf), t);
    }
    assert_eq!(join_code(&producer), 0);
    assert_eq!(q.qsize(), 0);
}

#[test]
fn inline_consumer_killed_after_claim_in_get_bytes_into() {
    inline_consumer_killed_in_get_bytes_into(KillPoint::ConsumerAfterClaim);
}

#[test]
fn inline_consumer_killed_after_release_in_get_bytes_into() {
    inline_consumer_killed_in_get_bytes_into(KillPoint::ConsumerAfterRelease);
}

/// A producer killed between its commit and its notification, while a consumer already sleeps
/// in `get()` with no timeout: the message is there but nobody announces it. The sleeper must
/// still find it (it sleeps in bounded slices), not sleep until some other put.
#[test]
fn a_sleeping_get_finds_a_message_whose_producer_died_before_notifying() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<()>::with_capacity(1024, 0).unwrap();
    let consumer = spawn({
        let q = q.clone();
        move || {
            let m = q.get_bytes().unwrap();
            std::process::exit(if tag_of(&m) == 5 { 0 } else { 4 });
        }
    });
    // The consumer must be asleep in the kernel before the message lands, or nothing tests
    // that a sleeper finds an unannounced message.
    assert!(common::await_futex_sleep(consumer.pid().unwrap(), LIMIT / 2), "the consumer never slept");
    let victim = spawn({
        let q = q.clone();
        move || {
            set_kill_point(Some(KillPoint::ProducerAfterCommit));
            let _ = q.put_bytes(&msg_of(5, SMALL));
            std::process::exit(3);
        }
    });
    assert_eq!(join_code(&victim), SIGKILL_EXIT);
    assert_eq!(join_code(&consumer), 0, "the sleeping get did not deliver the committed message");
}

/// `wait()` on a queue whose head is the reservation of a producer killed before committing,
/// with a live producer's message behind it: the queue must be reported ready (the dead cell
/// skipped), not wait for ever.
#[test]
fn wait_skips_a_dead_producers_reservation_at_the_head() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<()>::with_capacity(1024, 0).unwrap();
    let victim = spawn({
        let q = q.clone();
        move || {
            set_kill_point(Some(KillPoint::ProducerAfterReserve));
            let _ = q.put_bytes(&msg_of(1, SMALL));
            std::process::exit(3);
        }
    });
    assert_eq!(join_code(&victim), SIGKILL_EXIT);
    let live = spawn({
        let q = q.clone();
        move || q.put_bytes(&msg_of(2, SMALL)).unwrap()
    });
    assert_eq!(join_code(&live), 0);
    assert_eq!(shmproc::wait(&[&q as &dyn shmproc::Waitable], Some(LIMIT)), vec![0]);
    assert_eq!(tag_of(&q.try_get_bytes().unwrap()), 2);
}

/// A consumer killed holding a claim while a producer in another process is blocked on exactly
/// those cells: the producer must notice the death and go on.
#[test]
fn blocked_producer_recovers_cells_of_a_consumer_killed_holding_them() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<()>::with_capacity(1024, 0).unwrap();
    // Fill 15 of 16 cells: 5 messages of 3 cells.
    for t in 0..5 {
        q.put_bytes(&msg(t)).unwrap();
    }
    let producer = spawn({
        let q = q.clone();
        move || {
            for t in 100..120 {
                q.put_bytes_timeout(&msg(t), LIMIT).unwrap();
            }
        }
    });
    let victim = spawn({
        let q = q.clone();
        move || {
            set_kill_point(Some(KillPoint::ConsumerAfterClaim));
            let _ = q.get_bytes();
            std::process::exit(3);
        }
    });
    assert_eq!(join_code(&victim), SIGKILL_EXIT);
    for t in (1..5).chain(100..120) {
        assert_eq!(tag_of(&q.get_bytes_timeout(LIMIT).unwrap()), t);
    }
    assert_eq!(join_code(&producer), 0);
}

/// Producers SIGKILLed at random instants while a consumer reads: for each producer, the
/// received sequence numbers are a gap-free prefix (at most its in-flight message is lost),
/// nothing is duplicated, and a survivor's messages all arrive.
#[test]
fn producers_killed_at_random_instants() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    let q = Queue::<(u32, u32, Vec<u8>)>::with_capacity(2048, 0).unwrap();
    const VICTIMS: u32 = 6;
    for round in 0..VICTIMS {
        let victim = spawn({
            let q = q.clone();
            move || {
                for s in 0.. {
                    let _ = q.put((round, s, vec![s as u8; (s as usize * 13) % 200]));
                }
            }
        });
        // Let it run a little, reading meanwhile, then kill it at whatever it is doing.
        let mut got = Vec::new();
        for _ in 0..(200 + round * 97) {
            if let Ok(v) = q.get_timeout(LIMIT) {
                got.push(v);
            }
        }
        victim.kill().unwrap();
        assert_eq!(join_code(&victim), SIGKILL_EXIT);
        // The victim is dead and reaped: a non-blocking get skips its uncommitted reservation
        // (its producer is not alive), so `Empty` now means nothing is left.
        loop {
            match q.try_get() {
                Ok(v) => got.push(v),
                Err(Error::Empty) => break,
                Err(e) => panic!("{e}"),
            }
        }
        for (i, (r, s, body)) in got.iter().enumerate() {
            assert_eq!(*r, round);
            assert_eq!(*s, i as u32, "gap or duplicate in round {round}");
            assert_eq!(body, &vec![*s as u8; (*s as usize * 13) % 200]);
        }
    }
    // The queue still works after six violent deaths.
    let survivor = spawn({
        let q = q.clone();
        move || {
            for s in 0..500 {
                q.put((99, s, vec![1; 50])).unwrap();
            }
        }
    });
    for s in 0..500 {
        assert_eq!(q.get_timeout(LIMIT).unwrap(), (99, s, vec![1; 50]));
    }
    assert_eq!(join_code(&survivor), 0);
}

/// Consumers SIGKILLed at random instants while producers write: every message is received at
/// most once, and at most one per killed consumer is lost.
#[test]
fn consumers_killed_at_random_instants() {
    let _f = fork_lock();
    let _w = Watchdog::new(LIMIT);
    const N: usize = 30_000;
    const VICTIMS: usize = 4;
    let q = Queue::<u32>::with_capacity(1024, 0).unwrap();
    let seen = RawArray::<u32>::new(N).unwrap();
    let producer = spawn({
        let q = q.clone();
        move || {
            for i in 0..N as u32 {
                q.put_timeout(i, LIMIT).unwrap();
            }
        }
    });
    for v in 0..VICTIMS {
        let victim = spawn({
            let (q, seen) = (q.clone(), seen.clone());
            move || {
                loop {
                    if let Ok(i) = q.get() {
                        seen.fetch_add(i as usize, 1).unwrap();
                    }
                }
            }
        });
        // Read alongside the victim for a while, then kill it. The victims may drain everything
        // the producer ever puts before we reach our share: stop reading once it is done.
        let mut got = 0;
        while got < 500 + v * 311 {
            match q.get_timeout(Duration::from_millis(300)) {
                Ok(i) => {
                    seen.fetch_add(i as usize, 1).unwrap();
                    got += 1;
                }
                Err(Error::Empty) if !producer.is_alive() => break,
                Err(Error::Empty) => {}
                Err(e) => panic!("{e}"),
            }
        }
        victim.kill().unwrap();
        assert_eq!(join_code(&victim), SIGKILL_EXIT);
    }
    loop {
        match q.get_timeout(Duration::from_millis(300)) {
            Ok(i) => {
                seen.fetch_add(i as usize, 1).unwrap();
            }
            Err(Error::Empty) if !producer.is_alive() => break,
            Err(Error::Empty) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(join_code(&producer), 0);
    let counts = seen.to_vec();
    assert!(counts.iter().all(|c| *c <= 1), "a message was delivered twice");
    let lost = counts.iter().filter(|c| **c == 0).count();
    assert!(lost <= VICTIMS, "{lost} messages lost with {VICTIMS} consumers killed");
}
