//! A loom model of the ring's positions, stamps and intents: the very `src/queue/ring.rs` (and
//! the eventcount it sleeps on), compiled over loom's atomics.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_ring`.
//!
//! The payload is modelled with loom `UnsafeCell`s, so a message read without a happens-before
//! edge from its writer is reported as a data race. Death is modelled by a thread that stops
//! half-way and marks its owner id dead (what /proc would say).
#![allow(clippy::unwrap_used)]
#![cfg(loom)]
#![allow(dead_code, unsafe_code)]

mod shim {
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

    /// Loom cannot model membarrier: both halves of the asymmetric fence are full fences here.
    pub(crate) fn light_fence() {
        fence(Ordering::SeqCst);
    }

    pub(crate) fn heavy_barrier(deadline: Deadline) -> Deadline {
        fence(Ordering::SeqCst);
        deadline
    }

    /// In the model a deadline is only "some" (passes after one wait) or "none".
    pub(crate) type Deadline = Option<()>;

    pub(crate) fn deadline_passed(deadline: Deadline) -> bool {
        deadline.is_some()
    }

    pub(crate) fn slice_deadline(_deadline: Deadline, _slice: std::time::Duration) -> Deadline {
        Some(())
    }

    pub(crate) fn spin_hint() {
        loom::thread::yield_now();
    }

    /// One pause, then sleep: keeps the model small.
    pub(crate) struct Spinner(bool);

    impl Spinner {
        pub(crate) fn new() -> Spinner {
            Spinner(false)
        }

        pub(crate) fn spin(&mut self) -> bool {
            let first = !self.0;
            self.0 = true;
            loom::thread::yield_now();
            first
        }
    }

    /// A futex wait with no deadline returns only once the word changed, as the kernel's does
    /// (a lost wake-up is then a spin loom reports); with a deadline it returns at once.
    pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
        if deadline.is_some() {
            return false;
        }
        // Strict, as the kernel: no spurious return (a lost wake-up never ends, loom reports it).
        while word.load(Ordering::SeqCst) == expected {
            loom::thread::yield_now();
        }
        true
    }

    pub(crate) fn futex_wake(_word: &AtomicU32, _n: u32) {}
}

#[path = "../src/sync/eventcount.rs"]
mod eventcount;

#[path = "../src/queue/ring.rs"]
mod ring;

use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use ring::{CELL, CellMeta, Claim, Reserve, Ring, RingHeader, Slot, cells_for};

thread_local! {
    /// Which owner ids are dead (outside the model, like /proc). Loom runs a model's threads
    /// on the test's OS thread, so this is per test and deterministic.
    static DEAD: [AtomicBool; 8] = [const { AtomicBool::new(false) }; 8];
}

fn is_live(owner: u64) -> bool {
    !DEAD.with(|d| d[owner as usize].load(StdOrdering::SeqCst))
}

fn mark_dead(owner: usize) {
    DEAD.with(|d| d[owner].store(true, StdOrdering::SeqCst));
}

fn reset_dead() {
    DEAD.with(|d| d.iter().for_each(|x| x.store(false, StdOrdering::SeqCst)));
}

struct Model {
    hdr: RingHeader,
    slots: Vec<Slot>,
    meta: Vec<CellMeta>,
    /// One word of payload per cell: the message tag.
    data: Vec<UnsafeCell<u64>>,
}

impl Model {
    fn new(cells: u64, participants: usize) -> Arc<Model> {
        let slots: Vec<Slot> = (0..participants).map(|_| Slot::new()).collect();
        for (i, s) in slots.iter().enumerate() {
            s.owner.store(i as u64 + 1, shim::Ordering::Relaxed);
        }
        Arc::new(Model {
            hdr: RingHeader::new(cells, participants as u64, 0),
            slots,
            meta: (0..cells).map(CellMeta::new).collect(),
            data: (0..cells).map(|_| UnsafeCell::new(0)).collect(),
        })
    }

    fn ring(&self) -> Ring<'_> {
        Ring { hdr: &self.hdr, slots: &self.slots, meta: &self.meta, is_live }
    }

    fn me(&self, id: usize) -> &Slot {
        &self.slots[id]
    }

    fn idx(&self, p: u64) -> usize {
        (p % self.meta.len() as u64) as usize
    }

    /// Puts a message of `k` cells tagged `tag` (spinning while full); `k == 0`: the tag alone,
    /// inline in the cell's word.
    fn put(&self, id: usize, tag: u64, k: u64) {
        let r = self.ring();
        if k == 0 {
            let t = loop {
                match r.try_reserve(self.me(id), 1) {
                    Reserve::Ok(t) => break t,
                    Reserve::Full => loom::thread::yield_now(),
                    Reserve::Closed => panic!("closed"),
                }
            };
            r.wait_released(t, 1);
            r.commit_inline(self.me(id), t, &tag.to_le_bytes());
            return;
        }
        let t = loop {
            match r.try_reserve(self.me(id), k) {
                Reserve::Ok(t) => break t,
                Reserve::Full => loom::thread::yield_now(),
                Reserve::Closed => panic!("closed"),
            }
        };
        r.wait_released(t, k);
        for p in t..t + k {
            self.data[self.idx(p)].with_mut(|d| {
                // SAFETY: the cells [t, t + k) are ours between reserve and commit.
                unsafe { *d = tag }
            });
        }
        r.commit(self.me(id), t, k * CELL as u64);
    }

    /// Takes one message (spinning while empty, skipping dead producers' cells); returns its tag.
    fn get(&self, id: usize) -> u64 {
        let r = self.ring();
        loop {
            match r.try_claim(self.me(id)) {
                Claim::Msg(c) if c.inline => {
                    assert_eq!((c.cells, c.len), (1, 8));
                    r.release(self.me(id), c);
                    return c.word;
                }
                Claim::Msg(c) => {
                    assert_eq!(c.cells, cells_for(c.len));
                    // SAFETY: the claimed cells are ours until release; loom checks the ordering.
                    let tag = self.data[self.idx(c.pos)].with(|d| unsafe { *d });
                    for p in c.pos..c.pos + c.cells {
                        // SAFETY: as above.
                        let v = self.data[self.idx(p)].with(|d| unsafe { *d });
                        assert_eq!(v, tag, "torn message");
                    }
                    r.release(self.me(id), c);
                    return tag;
                }
                Claim::Empty => loom::thread::yield_now(),
                Claim::Pending(h) => {
                    r.skip_if_producer_dead(self.me(id), h);
                    loom::thread::yield_now();
                }
            }
        }
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.max_branches = 100_000;
    b.check(move || {
        reset_dead();
        f();
    });
}

#[test]
fn spsc_multi_cell_messages_wrap() {
    model(|| {
        let m = Model::new(4, 2);
        let p = {
            let m = m.clone();
            loom::thread::spawn(move || {
                m.put(0, 1, 1);
                m.put(0, 2, 3);
                m.put(0, 3, 2);
            })
        };
        assert_eq!(m.get(1), 1);
        assert_eq!(m.get(1), 2);
        assert_eq!(m.get(1), 3);
        p.join().unwrap();
    });
}

#[test]
fn inline_and_data_messages_keep_their_order() {
    model(|| {
        let m = Model::new(4, 2);
        let p = {
            let m = m.clone();
            loom::thread::spawn(move || {
                m.put(0, 1, 0);
                m.put(0, 2, 3);
                m.put(0, 3, 0);
            })
        };
        assert_eq!(m.get(1), 1);
        assert_eq!(m.get(1), 2);
        assert_eq!(m.get(1), 3);
        p.join().unwrap();
    });
}

#[test]
fn two_producers_one_consumer_exactly_once() {
    model(|| {
        let m = Model::new(2, 3);
        let mut hs = Vec::new();
        for id in 0..2 {
            let m = m.clone();
            hs.push(loom::thread::spawn(move || m.put(id, 10 + id as u64, 1)));
        }
        let mut got = [m.get(2), m.get(2)];
        for h in hs {
            h.join().unwrap();
        }
        got.sort();
        assert_eq!(got, [10, 11]);
    });
}

#[test]
fn one_producer_two_consumers_exactly_once() {
    model(|| {
        let m = Model::new(2, 3);
        m.put(0, 10, 1);
        let p = {
            let m = m.clone();
            loom::thread::spawn(move || m.put(0, 11, 1))
        };
        let c = {
            let m = m.clone();
            loom::thread::spawn(move || m.get(1))
        };
        let a = m.get(2);
        let b = c.join().unwrap();
        p.join().unwrap();
        let mut got = [a, b];
        got.sort();
        assert_eq!(got, [10, 11]);
    });
}

#[test]
fn a_dead_producers_reservation_is_skipped() {
    model(|| {
        let m = Model::new(2, 3);
        let dying = {
            let m = m.clone();
            loom::thread::spawn(move || {
                let r = m.ring();
                // Dies right after reserving: never commits.
                assert!(matches!(r.try_reserve(m.me(0), 1), Reserve::Ok(_)), "an empty ring refused");
                mark_dead(1);
            })
        };
        let live = {
            let m = m.clone();
            loom::thread::spawn(move || m.put(1, 7, 1))
        };
        assert_eq!(m.get(2), 7);
        dying.join().unwrap();
        live.join().unwrap();
    });
}

#[test]
fn a_dead_consumers_cells_are_released() {
    model(|| {
        let m = Model::new(2, 3);
        m.put(0, 1, 1);
        m.put(0, 2, 1);
        let dying = {
            let m = m.clone();
            loom::thread::spawn(move || {
                let r = m.ring();
                loop {
                    match r.try_claim(m.me(1)) {
                        Claim::Msg(_) => break, // dies holding message 1
                        _ => loom::thread::yield_now(),
                    }
                }
                mark_dead(2);
            })
        };
        let producer = {
            let m = m.clone();
            // Lap 2 needs the dead consumer's cell.
            loom::thread::spawn(move || m.put(0, 3, 2))
        };
        dying.join().unwrap();
        assert_eq!(m.get(2), 2);
        assert_eq!(m.get(2), 3);
        producer.join().unwrap();
    });
}

#[test]
fn a_dead_consumers_inline_cell_is_released() {
    model(|| {
        let m = Model::new(2, 3);
        m.put(0, 1, 0);
        m.put(0, 2, 0);
        let dying = {
            let m = m.clone();
            loom::thread::spawn(move || {
                let r = m.ring();
                loop {
                    match r.try_claim(m.me(1)) {
                        Claim::Msg(_) => break, // dies holding inline message 1
                        _ => loom::thread::yield_now(),
                    }
                }
                mark_dead(2);
            })
        };
        let producer = {
            let m = m.clone();
            // Position 2 is the dead consumer's cell.
            loom::thread::spawn(move || m.put(0, 3, 0))
        };
        dying.join().unwrap();
        assert_eq!(m.get(2), 2);
        assert_eq!(m.get(2), 3);
        producer.join().unwrap();
    });
}
