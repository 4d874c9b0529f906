//! Locks and shared data across processes: exact counts under contention, Python's Lock/RLock
//! semantics, poisoning, and the kill -9 matrix (a holder SIGKILLed while others wait).
mod common;

use std::ops::Deref;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{JOIN, finish, run, start};
use shmproc::{
    Array, Error, Lock, LockError, LockResult, Mutex, Process, RLock, RawArray, RawValue, ReentrantMutex, Value,
};

const WATCHDOG: Duration = Duration::from_secs(60);

/// Waits (bounded) until `flag` holds `value`.
fn await_flag(flag: &RawValue<u32>, value: u32, what: &str) {
    assert!(common::wait_for(JOIN, || flag.load() == value), "timed out waiting for {what}");
}

/// In a child: waits (bounded) until `flag` holds `value`, or exits with 99.
fn child_await(flag: &RawValue<u32>, value: u32) {
    if !common::wait_for(JOIN, || flag.load() == value) {
        shmproc::exit(99);
    }
}

/// Removes the names it holds from /dev/shm when dropped, so a failing test leaves nothing behind.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(n));
        }
    }
}

/// What a lock attempt produced, with the data when the lock was acquired.
#[derive(Debug, PartialEq)]
enum Got {
    Clean(u64),
    Poisoned(u64),
    WouldBlock,
    Other(String),
}

fn got<G: Deref<Target = u64>>(r: LockResult<G>) -> Got {
    match r {
        Ok(g) => Got::Clean(*g),
        Err(LockError::Poisoned(p)) => Got::Poisoned(*p.into_inner()),
        Err(LockError::WouldBlock) => Got::WouldBlock,
        Err(e) => Got::Other(format!("{e:?}")),
    }
}

/// A child's exit code for a lock outcome: 0 for `want`, 10 + a code for anything else.
fn code_for(outcome: Got, want: &Got) -> i32 {
    if &outcome == want {
        return 0;
    }
    match outcome {
        Got::Clean(_) => 10,
        Got::Poisoned(_) => 11,
        Got::WouldBlock => 12,
        Got::Other(_) => 13,
    }
}

/// The locked objects the kill -9 matrix runs over: each protects a u64.
trait Guarded: Clone + Send + Sync + 'static {
    /// A fresh object holding 0 (an RLock is created holding `DATA`: its guard is read-only).
    fn make() -> Self;
    /// In a child: lock, store `DATA` when the kind allows writing, raise `held`, never unlock.
    fn hold_forever(&self, held: &RawValue<u32>) -> !;
    /// `lock()` for `None`, `lock_timeout(d)` for `Some(d)`; drops the guard before returning.
    fn attempt(&self, wait: Option<Duration>) -> Got;
    fn try_attempt(&self) -> Got;
    fn is_poisoned(&self) -> bool;
    fn clear_poison(&self);
}

/// What the holder writes before it is killed: readable through the poisoned guard.
const DATA: u64 = 42;

impl Guarded for Mutex<u64> {
    fn make() -> Self {
        Mutex::new(0).expect("mutex")
    }
    fn hold_forever(&self, held: &RawValue<u32>) -> ! {
        let mut g = self.lock().expect("lock in holder");
        *g = DATA;
        held.store(1);
        common::park_forever()
    }
    fn attempt(&self, wait: Option<Duration>) -> Got {
        got(match wait {
            None => self.lock(),
            Some(d) => self.lock_timeout(d),
        })
    }
    fn try_attempt(&self) -> Got {
        got(self.try_lock())
    }
    fn is_poisoned(&self) -> bool {
        Mutex::is_poisoned(self)
    }
    fn clear_poison(&self) {
        Mutex::clear_poison(self);
    }
}

impl Guarded for Value<u64> {
    fn make() -> Self {
        Value::new(0).expect("value")
    }
    fn hold_forever(&self, held: &RawValue<u32>) -> ! {
        let mut g = self.lock().expect("lock in holder");
        *g = DATA;
        held.store(1);
        common::park_forever()
    }
    fn attempt(&self, wait: Option<Duration>) -> Got {
        got(match wait {
            None => self.lock(),
            Some(d) => self.lock_timeout(d),
        })
    }
    fn try_attempt(&self) -> Got {
        got(self.try_lock())
    }
    fn is_poisoned(&self) -> bool {
        Value::is_poisoned(self)
    }
    fn clear_poison(&self) {
        Value::clear_poison(self);
    }
}

impl Guarded for ReentrantMutex<u64> {
    fn make() -> Self {
        ReentrantMutex::with_value(DATA).expect("rlock")
    }
    fn hold_forever(&self, held: &RawValue<u32>) -> ! {
        // Held twice: a dead owner's whole recursion count is discarded.
        let _outer = self.lock().expect("lock in holder");
        let _inner = self.lock().expect("re-enter in holder");
        held.store(1);
        common::park_forever()
    }
    fn attempt(&self, wait: Option<Duration>) -> Got {
        got(match wait {
            None => self.lock(),
            Some(d) => self.lock_timeout(d),
        })
    }
    fn try_attempt(&self) -> Got {
        got(self.try_lock())
    }
    fn is_poisoned(&self) -> bool {
        ReentrantMutex::is_poisoned(self)
    }
    fn clear_poison(&self) {
        ReentrantMutex::clear_poison(self);
    }
}

impl Guarded for Array<u64> {
    fn make() -> Self {
        Array::new(3).expect("array")
    }
    fn hold_forever(&self, held: &RawValue<u32>) -> ! {
        let mut g = self.lock().expect("lock in holder");
        g[0] = DATA;
        held.store(1);
        common::park_forever()
    }
    fn attempt(&self, wait: Option<Duration>) -> Got {
        let r = match wait {
            None => self.lock(),
            Some(d) => self.lock_timeout(d),
        };
        match r {
            Ok(g) => Got::Clean(g[0]),
            Err(LockError::Poisoned(p)) => Got::Poisoned(p.into_inner()[0]),
            Err(LockError::WouldBlock) => Got::WouldBlock,
            Err(e) => Got::Other(format!("{e:?}")),
        }
    }
    fn try_attempt(&self) -> Got {
        match self.try_lock() {
            Ok(g) => Got::Clean(g[0]),
            Err(LockError::Poisoned(p)) => Got::Poisoned(p.into_inner()[0]),
            Err(LockError::WouldBlock) => Got::WouldBlock,
            Err(e) => Got::Other(format!("{e:?}")),
        }
    }
    fn is_poisoned(&self) -> bool {
        Array::is_poisoned(self)
    }
    fn clear_poison(&self) {
        Array::clear_poison(self);
    }
}

/// Starts a child that takes the lock and is then parked holding it.
fn start_holder<L: Guarded>(l: &L) -> Process {
    let held = RawValue::new(0u32).expect("raw value");
    let p = start({
        let (l, held) = (l.clone(), held.clone());
        move || l.hold_forever(&held)
    });
    await_flag(&held, 1, "the holder to take the lock");
    p
}

/// After the holder's death was seen: later lockers see the poison until `clear_poison`, in this
/// process and in a fresh child, and the lock then works normally everywhere.
fn poison_persists_then_clears<L: Guarded>(l: &L) {
    assert!(l.is_poisoned());
    assert_eq!(l.attempt(None), Got::Poisoned(DATA), "poison stays until clear_poison");
    let code = run({
        let l = l.clone();
        move || shmproc::exit(code_for(l.attempt(None), &Got::Poisoned(DATA)))
    });
    assert_eq!(code, 0, "a fresh locker in a new child must see the poison (11 = it did not)");
    l.clear_poison();
    assert!(!l.is_poisoned());
    assert_eq!(l.attempt(None), Got::Clean(DATA));
    assert_eq!(l.try_attempt(), Got::Clean(DATA));
    let code = run({
        let l = l.clone();
        move || shmproc::exit(code_for(l.attempt(None), &Got::Clean(DATA)))
    });
    assert_eq!(code, 0, "after clear_poison a child locks normally");
}

/// The holder is SIGKILLed while a thread of this process already sleeps in `lock()` (or in
/// `lock_timeout(60 s)`): that waiter must get `Poisoned` with the guard, never hang or time out.
fn kill9_with_waiting_thread<L: Guarded>(wait: Option<Duration>) {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let l = L::make();
    let holder = start_holder(&l);
    assert_eq!(l.try_attempt(), Got::WouldBlock, "the holder has it");

    let (tid_tx, tid_rx) = mpsc::channel();
    let (res_tx, res_rx) = mpsc::channel();
    let waiter = std::thread::spawn({
        let l = l.clone();
        move || {
            tid_tx.send(common::current_tid()).expect("send tid");
            let _ = res_tx.send(l.attempt(wait));
        }
    });
    let tid = tid_rx.recv_timeout(JOIN).expect("waiter tid");
    assert!(common::wait_for(JOIN, || common::in_futex_call(tid)), "the waiter never slept in the lock");

    holder.kill().expect("kill");
    assert_eq!(finish(&holder), -9);
    let outcome = res_rx.recv_timeout(JOIN).expect("the waiter must wake when the holder dies");
    waiter.join().expect("waiter thread");
    assert_eq!(outcome, Got::Poisoned(DATA), "the waiting locker gets the poisoned guard and the data");
    poison_persists_then_clears(&l);
}

/// The holder is SIGKILLed while nobody waits; the first locker is a new child process.
fn kill9_first_locker_in_child<L: Guarded>() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let l = L::make();
    let holder = start_holder(&l);
    holder.kill().expect("kill");
    assert_eq!(finish(&holder), -9);
    let code = run({
        let l = l.clone();
        move || shmproc::exit(code_for(l.attempt(None), &Got::Poisoned(DATA)))
    });
    assert_eq!(code, 0, "the first locker after the death must see the poison");
    poison_persists_then_clears(&l);
}

/// The holder is SIGKILLed while another *process* sleeps in `lock()`.
fn kill9_with_waiting_process<L: Guarded>() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let l = L::make();
    let holder = start_holder(&l);
    let waiter = start({
        let l = l.clone();
        move || shmproc::exit(code_for(l.attempt(None), &Got::Poisoned(DATA)))
    });
    let wpid = waiter.pid().expect("pid");
    assert!(common::wait_for(JOIN, || common::in_futex_call(wpid)), "the waiting child never slept in the lock");
    holder.kill().expect("kill");
    assert_eq!(finish(&holder), -9);
    assert_eq!(finish(&waiter), 0, "the waiting child must get the poison (11 = it did not, 12 = would block)");
    poison_persists_then_clears(&l);
}

#[test]
fn kill9_mutex_waiter_in_lock() {
    kill9_with_waiting_thread::<Mutex<u64>>(None);
}

#[test]
fn kill9_mutex_waiter_in_lock_timeout_gets_poison_not_timeout() {
    kill9_with_waiting_thread::<Mutex<u64>>(Some(Duration::from_secs(60)));
}

#[test]
fn kill9_mutex_first_locker_in_child() {
    kill9_first_locker_in_child::<Mutex<u64>>();
}

#[test]
fn kill9_mutex_waiter_in_another_process() {
    kill9_with_waiting_process::<Mutex<u64>>();
}

#[test]
fn kill9_rlock_waiter_in_lock() {
    kill9_with_waiting_thread::<ReentrantMutex<u64>>(None);
}

#[test]
fn kill9_rlock_waiter_in_lock_timeout_gets_poison_not_timeout() {
    kill9_with_waiting_thread::<ReentrantMutex<u64>>(Some(Duration::from_secs(60)));
}

#[test]
fn kill9_rlock_first_locker_in_child() {
    kill9_first_locker_in_child::<ReentrantMutex<u64>>();
}

#[test]
fn kill9_rlock_waiter_in_another_process() {
    kill9_with_waiting_process::<ReentrantMutex<u64>>();
}

#[test]
fn kill9_value_waiter_in_lock() {
    kill9_with_waiting_thread::<Value<u64>>(None);
}

#[test]
fn kill9_value_waiter_in_lock_timeout_gets_poison_not_timeout() {
    kill9_with_waiting_thread::<Value<u64>>(Some(Duration::from_secs(60)));
}

#[test]
fn kill9_value_first_locker_in_child() {
    kill9_first_locker_in_child::<Value<u64>>();
}

#[test]
fn kill9_value_get_set_report_poison() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let v = <Value<u64> as Guarded>::make();
    let holder = start_holder(&v);
    holder.kill().expect("kill");
    assert_eq!(finish(&holder), -9);
    assert!(matches!(v.get(), Err(Error::Poisoned)));
    assert!(matches!(v.set(1), Err(Error::Poisoned)));
    assert!(v.is_poisoned());
    v.clear_poison();
    assert_eq!(v.get().expect("get"), DATA);
    v.set(7).expect("set");
    assert_eq!(v.get().expect("get"), 7);
}

#[test]
fn kill9_array_waiter_in_lock() {
    kill9_with_waiting_thread::<Array<u64>>(None);
}

#[test]
fn kill9_array_first_locker_in_child() {
    kill9_first_locker_in_child::<Array<u64>>();
}

#[test]
fn kill9_lock_python_acquire_reports_poison_and_releases() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let l = Lock::new(()).expect("lock");
    let held = RawValue::new(0u32).expect("raw value");
    let holder = start({
        let (l, held) = (l.clone(), held.clone());
        move || {
            if !matches!(l.acquire(true, None), Ok(true)) {
                shmproc::exit(2);
            }
            held.store(1);
            common::park_forever()
        }
    });
    await_flag(&held, 1, "the holder");
    holder.kill().expect("kill");
    assert_eq!(finish(&holder), -9);
    assert!(matches!(l.acquire(true, Some(Duration::from_secs(10))), Err(Error::Poisoned)));
    assert!(!l.is_locked(), "a poisoned acquire() leaves the lock free");
    l.clear_poison();
    assert_eq!(l.acquire(false, None).ok(), Some(true));
    l.release().expect("release");
}

// ---- counting under contention ------------------------------------------------------------

#[test]
fn value_4_processes_x_10000_increments_is_exactly_40000() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let v = Value::new(0u64).expect("value");
    let procs: Vec<Process> = (0..4)
        .map(|_| {
            let v = v.clone();
            start(move || {
                for _ in 0..10_000 {
                    *v.lock().expect("lock") += 1;
                }
            })
        })
        .collect();
    for p in &procs {
        assert_eq!(finish(p), 0);
    }
    assert_eq!(v.get().expect("get"), 40_000);
}

#[test]
fn mutex_4_processes_and_the_parent_count_exactly() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let m = Mutex::new([0u64; 2]).expect("mutex");
    let procs: Vec<Process> = (0..4)
        .map(|_| {
            let m = m.clone();
            start(move || {
                for _ in 0..5_000 {
                    let mut g = m.lock().expect("lock");
                    // Two fields updated under one hold: nobody ever sees them differ.
                    if g[0] != g[1] {
                        shmproc::exit(3);
                    }
                    g[0] += 1;
                    std::hint::spin_loop();
                    g[1] += 1;
                }
            })
        })
        .collect();
    for _ in 0..5_000 {
        let mut g = m.lock().expect("lock");
        assert_eq!(g[0], g[1]);
        g[0] += 1;
        g[1] += 1;
    }
    for p in &procs {
        assert_eq!(finish(p), 0, "3 = a child saw a torn update");
    }
    assert_eq!(*m.lock().expect("lock"), [25_000, 25_000]);
}

#[test]
fn raw_value_fetch_add_from_4_processes_sums_exactly() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let total = RawValue::new(0u64).expect("raw value");
    let procs: Vec<Process> = (0..4)
        .map(|_| {
            let total = total.clone();
            start(move || {
                for _ in 0..10_000 {
                    total.fetch_add(1);
                }
            })
        })
        .collect();
    for p in &procs {
        assert_eq!(finish(p), 0);
    }
    assert_eq!(total.load(), 40_000);
}

#[test]
fn raw_array_fetch_add_from_4_processes_sums_exactly() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let a = RawArray::<i32>::new(4).expect("raw array");
    let procs: Vec<Process> = (0..4i32)
        .map(|k| {
            let a = a.clone();
            start(move || {
                for _ in 0..5_000 {
                    for i in 0..4 {
                        a.fetch_add(i, 1).expect("in range");
                    }
                    a.fetch_sub(3, k).expect("in range");
                    a.fetch_add(3, k).expect("in range");
                }
            })
        })
        .collect();
    for p in &procs {
        assert_eq!(finish(p), 0);
    }
    assert_eq!(a.to_vec(), vec![20_000; 4]);
    assert!(matches!(a.fetch_add(4, 1), Err(Error::IndexOutOfRange { index: 4, len: 4 })));
    assert!(matches!(a.load(4), Err(Error::IndexOutOfRange { .. })));
    assert!(matches!(a.store(9, 0), Err(Error::IndexOutOfRange { .. })));
}

#[test]
fn raw_value_float_fetch_add_from_4_processes() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    // Multiples of 0.5 below 2^52 are exact: the sum must be exact too.
    let d = RawValue::new(0.0f64).expect("raw value");
    let f = RawValue::new(0.0f32).expect("raw value");
    let procs: Vec<Process> = (0..4)
        .map(|_| {
            let (d, f) = (d.clone(), f.clone());
            start(move || {
                for _ in 0..2_000 {
                    d.fetch_add(0.5);
                    f.fetch_add(0.25);
                }
            })
        })
        .collect();
    for p in &procs {
        assert_eq!(finish(p), 0);
    }
    assert_eq!(d.load(), 4_000.0);
    assert_eq!(f.load(), 2_000.0);
    assert_eq!(d.fetch_sub(1000.0), 4_000.0);
    assert_eq!(d.load(), 3_000.0);
    assert_eq!(d.compare_exchange(3_000.0, 1.5), Ok(3_000.0));
    assert_eq!(d.compare_exchange(3_000.0, 2.5), Err(1.5));
}

// ---- Array --------------------------------------------------------------------------------

#[test]
fn array_writes_from_children_are_seen_by_the_parent() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let a = Array::<i64>::from_slice(&[-1; 8]).expect("array");
    let procs: Vec<Process> = (0..4usize)
        .map(|k| {
            let a = a.clone();
            start(move || {
                a.set(2 * k, (k * 10) as i64).expect("set");
                let mut g = a.lock().expect("lock");
                g[2 * k + 1] = (k * 10 + 1) as i64;
            })
        })
        .collect();
    for p in &procs {
        assert_eq!(finish(p), 0);
    }
    assert_eq!(a.to_vec().expect("to_vec"), vec![0, 1, 10, 11, 20, 21, 30, 31]);
    assert_eq!(a.get(5).expect("get"), 21);
    assert_eq!(a.len(), 8);
}

#[test]
fn array_index_out_of_range() {
    let a = Array::<u16>::new(3).expect("array");
    assert!(matches!(a.get(3), Err(Error::IndexOutOfRange { index: 3, len: 3 })));
    assert!(matches!(a.set(3, 1), Err(Error::IndexOutOfRange { index: 3, len: 3 })));
    assert!(matches!(a.get(usize::MAX), Err(Error::IndexOutOfRange { .. })));
    a.set(2, 7).expect("the last index");
    assert_eq!(a.to_vec().expect("to_vec"), vec![0, 0, 7]);
    let empty = Array::<u64>::new(0).expect("empty array");
    assert!(empty.is_empty());
    assert!(matches!(empty.get(0), Err(Error::IndexOutOfRange { index: 0, len: 0 })));
}

#[test]
fn array_copy_from_slice_length_mismatch() {
    let a = Array::<f64>::new(4).expect("array");
    assert!(matches!(a.copy_from_slice(&[1.0; 3]), Err(Error::LengthMismatch { expected: 4, found: 3 })));
    assert!(matches!(a.copy_from_slice(&[1.0; 5]), Err(Error::LengthMismatch { expected: 4, found: 5 })));
    assert_eq!(a.to_vec().expect("to_vec"), vec![0.0; 4], "a refused copy changes nothing");
    a.copy_from_slice(&[1.0, 2.0, 3.0, 4.0]).expect("same length");
    assert_eq!(a.to_vec().expect("to_vec"), vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn named_value_opened_by_another_process() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let name = common::unique_name("named-value");
    let aname = common::unique_name("named-array");
    let _c = Cleanup(vec![name.clone(), aname.clone()]);
    let v = Value::create(&name, 5u64).expect("create");
    // The child gets only the name: it opens the segment itself.
    let code = run({
        let name = name.clone();
        move || {
            let Ok(mine) = Value::<u64>::open(&name) else { shmproc::exit(2) };
            let Ok(mut g) = mine.lock() else { shmproc::exit(3) };
            *g += 1;
        }
    });
    assert_eq!(code, 0);
    assert_eq!(v.get().expect("get"), 6);
    // A named array the same way.
    let a = Array::<u32>::create_from_slice(&aname, &[1, 2, 3]).expect("create");
    let code = run({
        let aname = aname.clone();
        move || {
            let Ok(mine) = Array::<u32>::open(&aname) else { shmproc::exit(2) };
            if mine.len() != 3 {
                shmproc::exit(4);
            }
            mine.set(2, 30).expect("set");
        }
    });
    assert_eq!(code, 0);
    assert_eq!(a.to_vec().expect("to_vec"), vec![1, 2, 30]);
    v.unlink().expect("unlink");
    a.unlink().expect("unlink");
}

// ---- Mutex --------------------------------------------------------------------------------

/// A child holding `m` until `release` becomes 1; `held` becomes 1 once it has the lock.
fn start_releasable_holder(m: &Mutex<u64>, held: &RawValue<u32>, release: &RawValue<u32>) -> Process {
    let p = start({
        let (m, held, release) = (m.clone(), held.clone(), release.clone());
        move || {
            let g = m.lock().expect("lock");
            held.store(1);
            child_await(&release, 1);
            drop(g);
        }
    });
    await_flag(held, 1, "the holder");
    p
}

#[test]
fn mutex_try_lock_while_another_process_holds_it_would_block() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let m = Mutex::new(1u64).expect("mutex");
    let (held, release) = (RawValue::new(0u32).expect("rv"), RawValue::new(0u32).expect("rv"));
    let holder = start_releasable_holder(&m, &held, &release);
    assert!(matches!(m.try_lock(), Err(LockError::WouldBlock)));
    assert!(m.is_locked());
    release.store(1);
    assert_eq!(finish(&holder), 0);
    assert!(!m.is_locked());
    assert_eq!(*m.try_lock().expect("free now"), 1);
}

#[test]
fn mutex_lock_timeout_gives_up_no_sooner_than_the_timeout() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let m = Mutex::new(0u64).expect("mutex");
    let (held, release) = (RawValue::new(0u32).expect("rv"), RawValue::new(0u32).expect("rv"));
    let holder = start_releasable_holder(&m, &held, &release);
    for timeout in [Duration::ZERO, Duration::from_millis(1), Duration::from_millis(150)] {
        let t0 = Instant::now();
        let r = m.lock_timeout(timeout);
        let took = t0.elapsed();
        assert!(matches!(r, Err(LockError::WouldBlock)), "{timeout:?}: {r:?}");
        assert!(took >= timeout, "lock_timeout({timeout:?}) gave up after {took:?}");
    }
    release.store(1);
    // Once released, a long timeout succeeds as soon as the lock is free.
    assert!(m.lock_timeout(JOIN).is_ok());
    assert_eq!(finish(&holder), 0);
}

#[test]
fn mutex_relock_on_the_same_thread_would_deadlock() {
    let m = Mutex::new(3u64).expect("mutex");
    let g = m.lock().expect("lock");
    assert!(matches!(m.lock(), Err(LockError::WouldDeadlock)));
    assert!(matches!(m.lock_timeout(Duration::from_millis(10)), Err(LockError::WouldDeadlock)));
    // Even the non-blocking forms say why: waiting could never succeed (glibc's robust
    // error-checking trylock reports EDEADLK to its owner).
    assert!(matches!(m.try_lock(), Err(LockError::WouldDeadlock)));
    assert!(matches!(m.acquire(true, None), Err(Error::WouldDeadlock)));
    assert!(matches!(m.acquire(false, None), Err(Error::WouldDeadlock)));
    assert_eq!(*g, 3, "the first guard is intact");
    drop(g);
    assert!(m.lock().is_ok());
    // The same for a Value.
    let v = Value::new(1u8).expect("value");
    let g = v.lock().expect("lock");
    assert!(matches!(v.lock(), Err(LockError::WouldDeadlock)));
    drop(g);
}

#[test]
fn mutex_is_exclusive_between_threads_of_one_process() {
    let m = Mutex::new(0u64).expect("mutex");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    *m.lock().expect("lock") += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(*m.lock().expect("lock"), 40_000);
}

#[test]
fn mutex_guard_releases_on_drop_and_named_mutex_round_trip() {
    let name = common::unique_name("named-mutex");
    let _c = Cleanup(vec![name.clone()]);
    let m = Mutex::create(&name, [1u32, 2]).expect("create");
    let other = Mutex::<[u32; 2]>::open(&name).expect("open");
    {
        let mut g = other.lock().expect("lock");
        g[1] = 20;
        assert!(m.is_locked());
        assert!(matches!(m.try_lock(), Err(LockError::WouldDeadlock)), "another handle, same thread");
    }
    assert!(!m.is_locked());
    assert_eq!(*m.lock().expect("lock"), [1, 20]);
    assert_eq!(m.name(), Some(name.as_str()));
    m.unlink().expect("unlink");
    assert!(matches!(other.unlink(), Err(Error::NotFound { .. })));
}

// ---- Python's Lock: acquire / release -----------------------------------------------------

#[test]
fn lock_acquire_release_python_semantics() {
    let l = Lock::new(()).expect("lock");
    assert!(!l.is_locked());
    assert!(l.acquire(false, None).expect("acquire(False)"));
    assert!(l.is_locked());
    // Unlike Python's unowned Lock, ours knows its owner: re-acquiring on the same thread is an
    // error rather than False (blocking would deadlock), whether blocking or not.
    assert!(matches!(l.acquire(false, None), Err(Error::WouldDeadlock)));
    assert!(matches!(l.acquire(true, Some(Duration::from_millis(10))), Err(Error::WouldDeadlock)));
    assert!(l.is_locked(), "still held once");
    l.release().expect("release");
    assert!(!l.is_locked());
    assert!(matches!(l.release(), Err(Error::NotLocked)), "release when unlocked");
    assert!(l.acquire(true, Some(Duration::from_millis(10))).expect("acquire(True, t) when free"));
    l.release().expect("release");
    assert!(l.acquire(true, None).expect("acquire() when free"));
    l.release().expect("release");
}

#[test]
fn lock_acquire_timeout_while_another_process_holds_it() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let l = Lock::new(()).expect("lock");
    let (held, release) = (RawValue::new(0u32).expect("rv"), RawValue::new(0u32).expect("rv"));
    let holder = start({
        let (l, held, release) = (l.clone(), held.clone(), release.clone());
        move || {
            if !matches!(l.acquire(true, None), Ok(true)) {
                shmproc::exit(2);
            }
            held.store(1);
            child_await(&release, 1);
            if l.release().is_err() {
                shmproc::exit(3);
            }
        }
    });
    await_flag(&held, 1, "the holder");
    assert!(!l.acquire(false, None).expect("acquire(False)"));
    let timeout = Duration::from_millis(150);
    let t0 = Instant::now();
    assert!(!l.acquire(true, Some(timeout)).expect("acquire(True, t)"));
    assert!(t0.elapsed() >= timeout, "acquire gave up after {:?}", t0.elapsed());
    assert!(matches!(l.release(), Err(Error::NotOwner)), "release of another process's lock");
    assert!(l.is_locked(), "a refused release changes nothing");
    release.store(1);
    assert!(l.acquire(true, Some(JOIN)).expect("acquire once released"));
    assert_eq!(finish(&holder), 0);
    l.release().expect("release");
}

#[test]
fn lock_release_from_another_process_is_not_owner() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let l = Lock::new(()).expect("lock");
    assert!(l.acquire(true, None).expect("acquire"));
    let code = run({
        let l = l.clone();
        move || match l.release() {
            Err(Error::NotOwner) => shmproc::exit(0),
            Err(Error::NotLocked) => shmproc::exit(2),
            Ok(()) => shmproc::exit(3),
            Err(_) => shmproc::exit(4),
        }
    });
    assert_eq!(code, 0, "2 = NotLocked, 3 = the child released it");
    assert!(l.is_locked());
    l.release().expect("the owner releases");
    // And a release in a child of an unlocked lock is NotLocked there too.
    let code = run({
        let l = l.clone();
        move || shmproc::exit(if matches!(l.release(), Err(Error::NotLocked)) { 0 } else { 1 })
    });
    assert_eq!(code, 0);
}

#[test]
fn lock_release_from_another_thread_is_not_owner() {
    let l = Lock::new(()).expect("lock");
    assert!(l.acquire(true, None).expect("acquire"));
    let r = std::thread::spawn({
        let l = l.clone();
        move || l.release()
    })
    .join()
    .expect("thread");
    assert!(matches!(r, Err(Error::NotOwner)), "{r:?}");
    l.release().expect("the owner releases");
}

// ---- poisoning by panic -------------------------------------------------------------------

#[test]
fn panic_while_holding_poisons_across_processes() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let m = Mutex::new(0u64).expect("mutex");
    let code = run({
        let m = m.clone();
        move || {
            let mut g = m.lock().expect("lock");
            *g = 13;
            panic!("deliberate panic while holding the lock");
        }
    });
    assert_eq!(code, 1);
    assert!(m.is_poisoned());
    assert!(!m.is_locked(), "the unwinding guard released it");
    match m.lock() {
        Err(LockError::Poisoned(p)) => assert_eq!(**p.get_ref(), 13),
        other => panic!("expected Poisoned, got {other:?}"),
    }
    m.clear_poison();
    assert_eq!(*m.lock().expect("clean after clear_poison"), 13);
}

#[test]
fn panic_while_holding_poisons_across_threads() {
    let v = Value::new(0u32).expect("value");
    let r = std::thread::spawn({
        let v = v.clone();
        move || {
            let mut g = v.lock().expect("lock");
            *g = 5;
            panic!("deliberate panic while holding the lock");
        }
    })
    .join();
    assert!(r.is_err());
    assert!(v.is_poisoned());
    assert!(matches!(v.get(), Err(Error::Poisoned)));
    let g = v.lock().expect_err("poisoned").into_poisoned_guard().expect("the guard");
    assert_eq!(*g, 5);
    drop(g);
    v.clear_poison();
    assert_eq!(v.get().expect("get"), 5);
}

// ---- RLock --------------------------------------------------------------------------------

#[test]
fn rlock_owner_reenters_n_times_and_must_release_n_times() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    const N: usize = 5;
    let r = RLock::new().expect("rlock");
    // A child reports whether it can take the lock right now: 0 = could not, 1 = could.
    let probe = |r: &RLock| {
        run({
            let r = r.clone();
            move || match r.acquire(false, None) {
                Ok(false) => shmproc::exit(0),
                Ok(true) => {
                    let _ = r.release();
                    shmproc::exit(1)
                }
                Err(_) => shmproc::exit(2),
            }
        })
    };
    for _ in 0..N {
        assert!(r.acquire(true, None).expect("re-enter"));
    }
    assert!(r.is_owned_by_current_thread());
    assert!(r.acquire(false, None).expect("non-blocking re-entry by the owner"));
    r.release().expect("release the extra level");
    for i in 0..N - 1 {
        r.release().expect("release");
        assert!(r.is_locked(), "still held after {} of {N} releases", i + 1);
        assert_eq!(probe(&r), 0, "another process took it after {} of {N} releases", i + 1);
    }
    r.release().expect("the last release");
    assert!(!r.is_locked());
    assert!(!r.is_owned_by_current_thread());
    assert_eq!(probe(&r), 1, "free after N releases");
    assert!(matches!(r.release(), Err(Error::NotLocked)), "one release too many");
}

#[test]
fn rlock_guards_nest() {
    let r = ReentrantMutex::with_value(9u32).expect("rlock");
    let a = r.lock().expect("lock");
    let b = r.try_lock().expect("the owner re-enters with try_lock");
    let c = r.lock_timeout(Duration::from_millis(10)).expect("and with lock_timeout");
    assert_eq!((*a, *b, *c), (9, 9, 9));
    drop(b);
    drop(a);
    assert!(r.is_locked(), "one level left");
    drop(c);
    assert!(!r.is_locked());
}

#[test]
fn rlock_release_by_another_process_is_not_owner() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let r = RLock::new().expect("rlock");
    assert!(r.acquire(true, None).expect("acquire"));
    assert!(r.acquire(true, None).expect("re-enter"));
    let code = run({
        let r = r.clone();
        move || match r.release() {
            Err(Error::NotOwner) => shmproc::exit(0),
            Err(Error::NotLocked) => shmproc::exit(2),
            Ok(()) => shmproc::exit(3),
            Err(_) => shmproc::exit(4),
        }
    });
    assert_eq!(code, 0, "2 = NotLocked, 3 = the child released it");
    let t = std::thread::spawn({
        let r = r.clone();
        move || r.release()
    })
    .join()
    .expect("thread");
    assert!(matches!(t, Err(Error::NotOwner)), "another thread: {t:?}");
    r.release().expect("release");
    r.release().expect("release");
    assert!(!r.is_locked());
}

#[test]
fn rlock_release_unowned_is_not_locked() {
    let r = RLock::new().expect("rlock");
    assert!(matches!(r.release(), Err(Error::NotLocked)));
    assert!(r.acquire(true, None).expect("acquire"));
    r.release().expect("release");
    assert!(matches!(r.release(), Err(Error::NotLocked)));
}

#[test]
fn rlock_other_process_blocks_until_fully_released() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let r = RLock::new().expect("rlock");
    let (held, release) = (RawValue::new(0u32).expect("rv"), RawValue::new(0u32).expect("rv"));
    let holder = start({
        let (r, held, release) = (r.clone(), held.clone(), release.clone());
        move || {
            let a = r.lock().expect("lock");
            let b = r.lock().expect("re-enter");
            held.store(1);
            child_await(&release, 1);
            drop(b);
            held.store(2);
            child_await(&release, 2);
            drop(a);
        }
    });
    await_flag(&held, 1, "the holder");
    assert!(matches!(r.try_lock(), Err(LockError::WouldBlock)));
    release.store(1);
    await_flag(&held, 2, "one level released");
    assert!(matches!(r.try_lock(), Err(LockError::WouldBlock)), "one level is still held");
    let timeout = Duration::from_millis(100);
    let t0 = Instant::now();
    assert!(matches!(r.lock_timeout(timeout), Err(LockError::WouldBlock)));
    assert!(t0.elapsed() >= timeout);
    release.store(2);
    assert!(r.lock_timeout(JOIN).is_ok(), "free once fully released");
    assert_eq!(finish(&holder), 0);
}

#[test]
fn mutex_lock_timeout_with_a_huge_timeout_waits_then_acquires() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let m = Mutex::new(5u64).expect("mutex");
    assert_eq!(*m.lock_timeout(Duration::MAX).expect("free lock, huge timeout"), 5);
    let (held, release) = (RawValue::new(0u32).expect("rv"), RawValue::new(0u32).expect("rv"));
    let holder = start_releasable_holder(&m, &held, &release);
    // A deadline centuries away must block like lock(), not fail (EINVAL) or return at once.
    let (tid_tx, tid_rx) = mpsc::channel();
    let (res_tx, res_rx) = mpsc::channel();
    let waiter = std::thread::spawn({
        let m = m.clone();
        move || {
            tid_tx.send(common::current_tid()).expect("send tid");
            let _ = res_tx.send(got(m.lock_timeout(Duration::MAX)));
        }
    });
    let tid = tid_rx.recv_timeout(JOIN).expect("waiter tid");
    assert!(common::wait_for(JOIN, || common::in_futex_call(tid)), "the waiter never slept in the lock");
    assert!(res_rx.try_recv().is_err(), "returned while the lock was held");
    release.store(1);
    assert_eq!(res_rx.recv_timeout(JOIN).expect("the waiter must acquire once released"), Got::Clean(5));
    waiter.join().expect("waiter thread");
    assert_eq!(finish(&holder), 0);
}

#[test]
fn rlock_lock_timeout_with_a_huge_timeout_acquires_a_free_lock() {
    let r = ReentrantMutex::with_value(1u8).expect("rlock");
    let g = r.lock_timeout(Duration::MAX).expect("free");
    let h = r.lock_timeout(Duration::MAX).expect("re-entry");
    assert_eq!((*g, *h), (1, 1));
}

// ---- ownership across fork and thread exit --------------------------------------------------

#[test]
fn a_lock_held_at_fork_is_not_owned_by_the_child() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let m = Mutex::new(1u64).expect("mutex");
    let r = ReentrantMutex::with_value(2u64).expect("rlock");
    let mg = m.lock().expect("lock");
    let rg = r.lock().expect("lock");
    // The child is a copy of this very thread, but not the owner: the lock words hold our tid.
    let code = run({
        let (m, r) = (m.clone(), r.clone());
        move || {
            if !matches!(m.try_lock(), Err(LockError::WouldBlock)) {
                shmproc::exit(2);
            }
            if !matches!(r.try_lock(), Err(LockError::WouldBlock)) {
                shmproc::exit(3); // an RLock re-entry here would mean the child thinks it owns it
            }
            if r.is_owned_by_current_thread() {
                shmproc::exit(4);
            }
            if !matches!(m.release(), Err(Error::NotOwner)) || !matches!(r.release(), Err(Error::NotOwner)) {
                shmproc::exit(5);
            }
            if !matches!(m.lock_timeout(Duration::from_millis(20)), Err(LockError::WouldBlock)) {
                shmproc::exit(6);
            }
        }
    });
    assert_eq!(code, 0, "2/3: try_lock did not block, 4: owns the RLock, 5: release allowed, 6: lock_timeout");
    assert!(r.is_owned_by_current_thread());
    assert_eq!((*mg, *rg), (1, 2));
    drop((mg, rg));
    // Released by us, the child can take both.
    let code = run({
        let (m, r) = (m.clone(), r.clone());
        move || {
            let ok = m.try_lock().is_ok() && r.try_lock().is_ok();
            shmproc::exit(if ok { 0 } else { 1 });
        }
    });
    assert_eq!(code, 0);
}

#[test]
fn a_thread_that_exits_holding_a_lock_poisons_it() {
    // The kernel's robust list works per thread: a thread that ends while it holds the lock (its
    // guard leaked) is a dead owner, like a killed process.
    let m = Mutex::new(0u64).expect("mutex");
    std::thread::spawn({
        let m = m.clone();
        move || {
            let mut g = m.lock().expect("lock");
            *g = DATA;
            std::mem::forget(g);
        }
    })
    .join()
    .expect("thread");
    match m.try_lock() {
        Err(LockError::Poisoned(p)) => assert_eq!(**p.get_ref(), DATA),
        other => panic!("expected Poisoned, got {other:?}"),
    }
    m.clear_poison();
    assert_eq!(*m.lock().expect("clean"), DATA);
}

// ---- Pod structs, and recovering from a kill under contention ---------------------------------

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
    hits: u32,
    _pad: u32,
}

#[test]
fn value_of_a_pod_struct_across_processes() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let v = Value::new(Point { x: 1.5, y: -2.0, hits: 0, _pad: 0 }).expect("value");
    let procs: Vec<Process> = (0..3)
        .map(|_| {
            let v = v.clone();
            start(move || {
                for _ in 0..1_000 {
                    let mut p = v.lock().expect("lock");
                    p.x += 1.0;
                    p.y -= 1.0;
                    p.hits += 1;
                }
            })
        })
        .collect();
    for p in &procs {
        assert_eq!(finish(p), 0);
    }
    assert_eq!(v.get().expect("get"), Point { x: 3_001.5, y: -3_002.0, hits: 3_000, _pad: 0 });
    // Named: the struct's type is part of the segment's fingerprint.
    let name = common::unique_name("point");
    let _c = Cleanup(vec![name.clone()]);
    let n = Value::create(&name, Point { x: 0.0, y: 0.0, hits: 7, _pad: 0 }).expect("create");
    assert!(matches!(Value::<[f64; 3]>::open(&name), Err(Error::WrongType { .. })), "same size, other type");
    assert_eq!(Value::<Point>::open(&name).expect("open").get().expect("get").hits, 7);
    n.unlink().expect("unlink");
}

#[test]
fn kill9_under_contention_survivors_finish_and_repair() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    const N: u64 = 5_000;
    // [0] = total, [1 + i] = worker i's own count; both updated under one hold, so a holder
    // killed between the two writes leaves them inconsistent, which the poison announces.
    let m = Mutex::new([0u64; 5]).expect("mutex");
    let progress = RawValue::new(0u64).expect("raw value");
    let repaired = RawValue::new(0u32).expect("raw value");
    let workers: Vec<Process> = (0..4usize)
        .map(|i| {
            let (m, progress, repaired) = (m.clone(), progress.clone(), repaired.clone());
            start(move || {
                // Worker 0 keeps going until it is killed; the others do N increments each.
                let rounds = if i == 0 { u64::MAX } else { N };
                for _ in 0..rounds {
                    let mut g = match m.lock() {
                        Ok(g) => g,
                        Err(LockError::Poisoned(p)) => {
                            // Repair: the per-worker counts are the truth.
                            let mut g = p.into_inner();
                            g[0] = g[1..].iter().sum();
                            m.clear_poison();
                            repaired.fetch_add(1);
                            g
                        }
                        Err(_) => shmproc::exit(2),
                    };
                    g[0] += 1;
                    std::hint::spin_loop();
                    g[1 + i] += 1;
                    drop(g);
                    if i == 0 {
                        progress.fetch_add(1);
                    }
                }
            })
        })
        .collect();
    // Kill worker 0 somewhere in the middle of its work, while the others still run.
    assert!(common::wait_for(JOIN, || progress.load() >= N / 4), "worker 0 made no progress");
    workers[0].kill().expect("kill");
    assert_eq!(finish(&workers[0]), -9);
    for w in &workers[1..] {
        assert_eq!(finish(w), 0, "a survivor failed (2 = an unexpected lock error)");
    }
    let g = match m.lock() {
        Ok(g) => g,
        Err(LockError::Poisoned(p)) => {
            // Died holding it after the survivors were done: nobody repaired it yet.
            let mut g = p.into_inner();
            g[0] = g[1..].iter().sum();
            m.clear_poison();
            g
        }
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(g[2..], [N, N, N], "every survivor did all its increments");
    assert!(g[1] >= N / 4, "worker 0's increments before it was killed: {}", g[1]);
    assert_eq!(g[0], g[1..].iter().sum::<u64>(), "the total matches the per-worker counts");
    assert!(repaired.load() <= 1, "one death, at most one repair");
}

// ---- dropping the last handle of a lock this process holds --------------------------------------

#[test]
fn dropping_a_held_lock_does_not_corrupt_a_later_mapping() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    // glibc links a held robust mutex into its thread's robust list through the mutex's bytes:
    // unmapping it while held used to let the next lock write into whatever took its address.
    let code = run(|| {
        let other = Mutex::new(0u64).expect("mutex");
        let l = Lock::new(()).expect("lock");
        if !matches!(l.acquire(true, None), Ok(true)) {
            shmproc::exit(2);
        }
        drop(l); // the last handle, still held: Python-style acquire() without release()
        let a = Array::<u64>::new(3).expect("array");
        std::mem::forget(a.lock().expect("lock")); // a leaked guard
        drop(a);
        let victim = shmproc::SharedMemory::new(4096 - 256).expect("shm");
        let zeros = |s: &shmproc::SharedMemory| {
            let mut b = vec![0u8; s.len()];
            s.read_at(0, &mut b).expect("read");
            b.iter().all(|x| *x == 0)
        };
        if !zeros(&victim) {
            shmproc::exit(3);
        }
        for _ in 0..10 {
            *other.lock().expect("lock") += 1;
        }
        shmproc::exit(if zeros(&victim) { 0 } else { 4 });
    });
    assert_eq!(code, 0, "4 = locking another mutex wrote into a fresh mapping");
}

#[test]
fn a_dead_holder_that_dropped_its_handle_is_still_reported() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let name = common::unique_name("dropped-held");
    let _c = Cleanup(vec![name.clone()]);
    let l = Lock::create(&name, ()).expect("create");
    // The child attaches by name (its own mapping), acquires, drops its handle and exits.
    let code = run({
        let name = name.clone();
        move || {
            let mine = Lock::open(&name).expect("open");
            if !matches!(mine.acquire(true, None), Ok(true)) {
                shmproc::exit(2);
            }
            drop(mine);
        }
    });
    assert_eq!(code, 0);
    // The kernel must still find the lock in the dead thread's robust list and mark it.
    match l.lock_timeout(JOIN) {
        Err(LockError::Poisoned(_)) => {}
        other => panic!("expected Poisoned (WouldBlock = the death went unreported), got {other:?}"),
    }
    l.clear_poison();
    assert!(l.try_lock().is_ok());
    l.unlink().expect("unlink");
}

// ---- the lock word's owner-liveness checks: never steal from a live owner, never hang ---------

#[test]
fn a_live_owner_whose_thread_name_is_cut_mid_character_keeps_its_lock() {
    // Linux keeps 15 bytes of a thread name: "ééééééééé" is cut inside a character, so
    // /proc/<tid>/stat is not valid UTF-8. That must never read as "owner dead".
    let _dog = common::Watchdog::new(WATCHDOG);
    let m = Mutex::new(0u64).expect("mutex");
    let (held_tx, held_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let owner = std::thread::Builder::new()
        .name("ééééééééé".to_owned())
        .spawn({
            let m = m.clone();
            move || {
                let _g = m.lock().expect("lock");
                held_tx.send(()).expect("send");
                let _ = done_rx.recv_timeout(JOIN);
            }
        })
        .expect("spawn");
    held_rx.recv_timeout(JOIN).expect("owner holds the lock");
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(12)); // past the try_lock check's rate limit
        assert!(matches!(m.try_lock(), Err(LockError::WouldBlock)), "a live owner's lock was taken");
    }
    assert!(matches!(m.lock_timeout(Duration::from_millis(250)), Err(LockError::WouldBlock)));
    assert!(!m.is_poisoned());
    done_tx.send(()).expect("send");
    owner.join().expect("owner");
    assert_eq!(*m.lock().expect("free again"), 0);
}

#[test]
fn a_stopped_owner_is_alive_its_lock_is_not_taken() {
    let _fork = common::fork_lock();
    let _dog = common::Watchdog::new(WATCHDOG);
    let m = Mutex::new(7u64).expect("mutex");
    let held = RawValue::new(0u32).expect("flag");
    let owner = start({
        let (m, held) = (m.clone(), held.clone());
        move || {
            let _g = m.lock().expect("lock");
            held.store(1);
            common::park_forever();
        }
    });
    await_flag(&held, 1, "the owner to hold the lock");
    let pid = owner.pid().expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    assert!(matches!(m.lock_timeout(Duration::from_millis(300)), Err(LockError::WouldBlock)));
    assert!(!m.is_poisoned(), "a stopped (live) owner was treated as dead");
    owner.kill().expect("kill");
    finish(&owner);
    match m.lock_timeout(Duration::from_secs(10)) {
        Err(LockError::Poisoned(p)) => assert_eq!(**p.get_ref(), 7),
        other => panic!("expected Poisoned after the kill, got {:?}", other.map(|g| *g)),
    }
}

extern "C" fn ignore_signal(_: i32) {}

#[test]
fn a_waiter_interrupted_by_signals_still_notices_the_owner_died() {
    // Frequent signals interrupt every futex wait early; the owner check must run all the same.
    #![allow(unsafe_code)]
    let _fork = common::fork_lock();
    let _dog = common::Watchdog::new(WATCHDOG);
    // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags: no SA_RESTART, so
    // the signal interrupts the waiter's futex wait).
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = ignore_signal as *const () as usize;
    // SAFETY: `act` is valid and its handler does nothing (async-signal-safe); the old action is
    // not needed.
    assert_eq!(unsafe { libc::sigaction(libc::SIGURG, &act, std::ptr::null_mut()) }, 0);
    let m = Mutex::new(3u64).expect("mutex");
    let held = RawValue::new(0u32).expect("flag");
    let owner = start({
        let (m, held) = (m.clone(), held.clone());
        move || {
            let _g = m.lock().expect("lock");
            held.store(1);
            common::park_forever();
        }
    });
    await_flag(&held, 1, "the owner to hold the lock");
    owner.kill().expect("kill");
    finish(&owner);
    let (tid_tx, tid_rx) = mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (result_tx, result_rx) = mpsc::channel();
    let waiter = std::thread::spawn({
        let m = m.clone();
        move || {
            // SAFETY: pthread_self has no preconditions.
            tid_tx.send(unsafe { libc::pthread_self() }).expect("send");
            result_tx.send(got(m.lock())).expect("send");
        }
    });
    let target = tid_rx.recv_timeout(JOIN).expect("waiter started");
    let pester = std::thread::spawn({
        let stop = stop.clone();
        move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // SAFETY: `target` is not joined before `stop` is set and this thread is joined,
                // so it names a thread that has not been joined (signalling one that has merely
                // finished is harmless: the handler does nothing).
                unsafe { libc::pthread_kill(target, libc::SIGURG) };
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let result = result_rx.recv_timeout(JOIN).expect("the waiter returned");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    pester.join().expect("pester");
    waiter.join().expect("waiter");
    assert_eq!(result, Got::Poisoned(3));
}

#[test]
fn release_while_a_guard_is_alive_is_refused() {
    let m = Mutex::new(1u64).expect("mutex");
    let g = m.lock().expect("lock");
    assert!(matches!(m.release(), Err(Error::HeldByGuard)));
    // Still exclusive: another thread cannot get in while the guard lives.
    std::thread::scope(|s| {
        s.spawn(|| assert!(matches!(m.try_lock(), Err(LockError::WouldBlock))));
    });
    drop(g);
    assert!(m.acquire(true, None).expect("acquire"));
    m.release().expect("release after acquire");
    assert!(matches!(m.release(), Err(Error::NotLocked)));
}
