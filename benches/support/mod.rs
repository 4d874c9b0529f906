//! Helpers shared by every bench: shared memory, fork/wait under a watchdog, the two-process
//! harnesses for `iter_custom`, and the floors (plain futex lock, raw SPSC ring, raw futex wake
//! round trip) and peers (glibc robust pthread mutex) that shmproc is measured against.
//!
//! Included from each bench with `#[path = "support/mod.rs"] mod support;`; each bench uses a
//! part of it, hence the `dead_code` allowance.
//!
//! Every wait in a multi-process bench is bounded: a forked child dies with its parent
//! (`PR_SET_PDEATHSIG`), and the parent arms a [`Watchdog`] around each measurement that kills
//! the child and ends the bench with a message when it takes longer than [`child_timeout`].
#![allow(dead_code, unsafe_code)]

use std::hint::spin_loop;
use std::io::Write;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a multi-process measurement may take before its child is killed and the bench ends:
/// 30 s, or `SHMPROC_BENCH_CHILD_TIMEOUT_SECS` (to test the watchdog itself).
pub fn child_timeout() -> Duration {
    static T: OnceLock<Duration> = OnceLock::new();
    *T.get_or_init(|| {
        let secs = std::env::var("SHMPROC_BENCH_CHILD_TIMEOUT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
        Duration::from_secs(secs)
    })
}

// ---------------------------------------------------------------------------------------------
// Shared memory
// ---------------------------------------------------------------------------------------------

/// A `MAP_SHARED | MAP_ANONYMOUS` mapping: zero-filled, page-aligned, inherited by forked
/// children (both processes then see the same pages). Unmapped on drop.
pub struct SharedMap {
    ptr: *mut u8,
    len: usize,
}

impl SharedMap {
    /// Maps `len` zeroed bytes of shared anonymous memory. Panics if the kernel refuses.
    pub fn new(len: usize) -> Self {
        assert!(len > 0, "SharedMap::new(0)");
        // SAFETY: an anonymous mapping at an address of the kernel's choosing touches no existing
        // memory; the result is checked against MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(ptr != libc::MAP_FAILED, "mmap({len}) failed: {}", std::io::Error::last_os_error());
        Self { ptr: ptr.cast(), len }
    }

    /// The first byte of the mapping (page-aligned).
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, unmapped only here; every
        // `Shared` borrowing it has been dropped before (it owns this map).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One `T` placed in its own [`SharedMap`], so a forked child sees the same object.
///
/// Only for types whose every mutation goes through interior mutability that works across
/// processes (atomics, process-shared locks): `Deref` hands out `&T` to memory that the other
/// process writes.
pub struct Shared<T: Sync> {
    ptr: *mut T,
    _map: SharedMap,
}

impl<T: Sync> Shared<T> {
    /// Moves `value` into fresh shared memory.
    pub fn new(value: T) -> Self {
        const { assert!(std::mem::align_of::<T>() <= 4096) };
        let map = SharedMap::new(std::mem::size_of::<T>().max(1));
        let ptr = map.ptr().cast::<T>();
        // SAFETY: the mapping is page-aligned (≥ align_of::<T>), large enough for a T, writable,
        // and nobody else can see it yet.
        unsafe { ptr.write(value) };
        Self { ptr, _map: map }
    }

    /// The object's address (the same in a forked child).
    pub fn as_ptr(&self) -> *mut T {
        self.ptr
    }
}

impl<T: Sync> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` was initialised in `new` and stays mapped while `self` lives; `T: Sync`
        // and shares only through interior mutability (the type's contract above).
        unsafe { &*self.ptr }
    }
}

impl<T: Sync> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` holds an initialised T that is dropped once, here, before its map goes.
        unsafe { std::ptr::drop_in_place(self.ptr) };
    }
}

/// An atomic padded to its own pair of cache lines (no false sharing, adjacent-line prefetch
/// included).
#[repr(C, align(128))]
#[derive(Default)]
pub struct Padded<T>(pub T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/// Spins, then yields, until `done()` holds. Unbounded on its own: callers run under a
/// [`Watchdog`] (parent) or die with their parent (child).
#[inline]
pub fn spin_until(mut done: impl FnMut() -> bool) {
    let mut n = 0u32;
    while !done() {
        if n < 128 {
            spin_loop();
            n += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// Shared (no `FUTEX_PRIVATE_FLAG`) FUTEX_WAIT: sleeps while `*word == expected`, at most
/// `timeout`. Returns the raw syscall result (spurious returns are the caller's to re-check).
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> libc::c_long {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos().cast_signed()),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32 for the call; `ts_ptr` is null or points at `ts`,
    // which outlives the call. FUTEX_WAIT with a relative timeout only reads both.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, ts_ptr) }
}

/// Shared FUTEX_WAKE of up to `n` waiters on `word`.
#[inline]
pub fn futex_wake(word: &AtomicU32, n: i32) -> libc::c_long {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE only uses its address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) }
}

// ---------------------------------------------------------------------------------------------
// Watchdog, fork and wait
// ---------------------------------------------------------------------------------------------

struct Armed {
    id: u64,
    deadline: Instant,
    pid: libc::pid_t,
    what: String,
}

#[derive(Default)]
struct WatchdogState {
    next_id: u64,
    armed: Vec<Armed>,
}

fn watchdog() -> &'static (Mutex<WatchdogState>, Condvar) {
    static W: OnceLock<(Mutex<WatchdogState>, Condvar)> = OnceLock::new();
    W.get_or_init(|| {
        std::thread::Builder::new()
            .name("bench-watchdog".into())
            .spawn(watchdog_thread)
            .expect("spawn the bench watchdog thread");
        (Mutex::new(WatchdogState::default()), Condvar::new())
    })
}

fn watchdog_thread() {
    let (lock, cv) = watchdog();
    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        if let Some(a) = st.armed.iter().find(|a| a.deadline <= now) {
            // SAFETY: kill(2) on a pid this process forked and has not reaped (it is reaped only
            // after the entry is disarmed); a stale pid at worst gets ESRCH.
            unsafe { libc::kill(a.pid, libc::SIGKILL) };
            eprintln!(
                "bench watchdog: {} (child {}) did not finish within {:?}: killed it, ending the bench",
                a.what,
                a.pid,
                child_timeout()
            );
            drop(st);
            std::thread::sleep(Duration::from_secs(2));
            std::process::exit(101);
        }
        st = match st.armed.iter().map(|a| a.deadline).min() {
            Some(d) => cv.wait_timeout(st, d.saturating_duration_since(now)).unwrap_or_else(|e| e.into_inner()).0,
            None => cv.wait(st).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// While alive, bounds a wait on child `pid`: past [`child_timeout`] the child is SIGKILLed, a
/// message names `what`, and the bench process exits with status 101.
pub struct Watchdog {
    id: u64,
}

impl Watchdog {
    /// Arms the watchdog for child `pid`.
    pub fn arm(pid: libc::pid_t, what: &str) -> Self {
        let (lock, cv) = watchdog();
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        st.next_id += 1;
        let id = st.next_id;
        st.armed.push(Armed { id, deadline: Instant::now() + child_timeout(), pid, what: what.to_owned() });
        cv.notify_one();
        Self { id }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, _) = watchdog();
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        st.armed.retain(|a| a.id != self.id);
    }
}

/// Runs `f` in a forked child, which then `_exit`s: 0 when `f` returns, 1 when it panics. The
/// child gets SIGKILL when the parent dies (no orphan spins forever). Returns the child's pid.
///
/// The child must touch only what `f` needs (the parent may be multithreaded: criterion, the
/// watchdog thread).
pub fn fork_child(f: impl FnOnce()) -> libc::pid_t {
    // Unflushed output would otherwise be printed twice.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: getpid(2) cannot fail.
    let parent = unsafe { libc::getpid() };
    // The watchdog thread must exist before the first fork that it may have to police.
    let _ = watchdog();
    // SAFETY: fork(2); the child below runs only `f` and async-signal-safe calls, then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: prctl(PR_SET_PDEATHSIG) only sets this process's parent-death signal.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        // SAFETY: getppid(2) cannot fail.
        let code = if unsafe { libc::getppid() } != parent {
            // The parent died before PR_SET_PDEATHSIG took effect.
            2
        } else {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(()) => 0,
                Err(_) => 1,
            }
        };
        // SAFETY: _exit(2) ends the child without running the parent's destructors or atexit
        // handlers, which belong to the parent.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Reaps child `pid` (bounded by the [`Watchdog`]) and panics unless it exited with status 0.
pub fn wait_child(pid: libc::pid_t) {
    let _dog = Watchdog::arm(pid, "wait_child");
    let status = waitpid_raw(pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {pid} failed: wait status {status:#x} (exit code 1 = it panicked)"
    );
}

/// Blocking `waitpid(pid, &status, 0)`, retried on EINTR; returns the wait status. Unbounded by
/// itself: for children that only `_exit` (the fork floor), or under a [`Watchdog`].
#[inline]
pub fn waitpid_raw(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: waitpid(2) on our own child, writing into a local.
        let r = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if r == pid {
            return status;
        }
        let err = std::io::Error::last_os_error();
        assert!(err.kind() == std::io::ErrorKind::Interrupted, "waitpid({pid}) failed: {err}");
    }
}

/// fork + `_exit(0)` in the child + waitpid in the parent: the floor of Process start+join.
#[inline]
pub fn raw_fork_waitpid() {
    // SAFETY: fork(2); the child does nothing but _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: _exit(2) in the child: no destructors, no atexit handlers, no allocation.
        unsafe { libc::_exit(0) };
    }
    let status = waitpid_raw(pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
}

// ---------------------------------------------------------------------------------------------
// Two-process harnesses for `iter_custom`
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Handshake {
    ready: Padded<AtomicU32>,
    done: Padded<AtomicU32>,
}

/// The harness under every cross-process bench: forks a child that runs `child(iters)`, waits
/// until the child is running, then times `parent(iters)` **and** the child's finishing
/// (whichever comes last), reaps the child (it must exit 0), and returns the elapsed time.
///
/// Whatever the two closures share must exist before the call (a forked child inherits it):
/// [`Shared`], a [`SharedMap`], pipes, or a shmproc object. The whole call is bounded by the
/// [`Watchdog`].
pub fn two_process(iters: u64, parent: impl FnOnce(u64), child: impl FnOnce(u64)) -> Duration {
    let hs = Shared::new(Handshake::default());
    let pid = fork_child(|| {
        hs.ready.store(1, Ordering::Release);
        // A panicking child reports at once (done = 2) instead of leaving the parent to the
        // watchdog; fork_child then turns the panic into exit code 1, which wait_child reports.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(iters)));
        hs.done.store(if r.is_ok() { 1 } else { 2 }, Ordering::Release);
        if let Err(p) = r {
            std::panic::resume_unwind(p);
        }
    });
    let dog = Watchdog::arm(pid, "two_process");
    spin_until(|| hs.ready.load(Ordering::Acquire) == 1);
    let start = Instant::now();
    parent(iters);
    spin_until(|| hs.done.load(Ordering::Acquire) != 0);
    let elapsed = start.elapsed();
    drop(dog);
    wait_child(pid);
    elapsed
}

/// `iters` round trips through one shared word: the parent writes `2k+1`, the child answers
/// `2k+2` (spinning, then yielding). The cache-line round-trip floor between two processes.
pub fn shared_word_round_trip(iters: u64) -> Duration {
    let word = Shared::new(Padded(AtomicU64::new(0)));
    two_process(
        iters,
        |n| {
            for k in 0..n {
                word.store(2 * k + 1, Ordering::Release);
                spin_until(|| word.load(Ordering::Acquire) == 2 * k + 2);
            }
        },
        |n| {
            for k in 0..n {
                spin_until(|| word.load(Ordering::Acquire) == 2 * k + 1);
                word.store(2 * k + 2, Ordering::Release);
            }
        },
    )
}

/// Two processes doing `iters` operations in all (the parent `iters / 2`, the child the rest),
/// each `op()` being lock + increment + unlock of one shared counter. `count()` reads the counter
/// (under its lock or not): it must have grown by exactly `iters`, or the bench panics. Returns
/// the time for both to finish, so criterion's per-iteration figure is per operation.
pub fn contended_2proc(iters: u64, op: impl Fn(), count: impl Fn() -> u64) -> Duration {
    let before = count();
    let parent_n = iters / 2;
    let elapsed = two_process(
        iters,
        |_| {
            for _ in 0..parent_n {
                op();
            }
        },
        |n| {
            for _ in 0..n - parent_n {
                op();
            }
        },
    );
    let after = count();
    assert_eq!(after.wrapping_sub(before), iters, "lost increments: the lock under test did not exclude");
    elapsed
}

/// The thread counterpart of [`two_process`]: runs `a(iters)` and `b(iters)` on two scoped
/// threads, starts the clock once both are running, and returns when both finish.
pub fn two_threads(iters: u64, a: impl FnOnce(u64) + Send, b: impl FnOnce(u64) + Send) -> Duration {
    let go = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        let ha = s.spawn(|| {
            go.wait();
            a(iters);
        });
        let hb = s.spawn(|| {
            go.wait();
            b(iters);
        });
        go.wait();
        let start = Instant::now();
        ha.join().expect("bench thread a panicked");
        hb.join().expect("bench thread b panicked");
        start.elapsed()
    })
}

// ---------------------------------------------------------------------------------------------
// Locks: a common face for the floors and peers
// ---------------------------------------------------------------------------------------------

/// lock/unlock for the lock benches (the counter they protect lives beside them).
pub trait RawLock: Sync {
    /// Blocks until held.
    fn lock(&self);
    /// Releases; the caller holds the lock.
    fn unlock(&self);
}

/// The floor: Drepper's three-state futex mutex ("Futexes Are Tricky", mutex #2) on a shared
/// futex word. 0 = free, 1 = held, 2 = held with (possible) sleepers. Spins briefly before
/// sleeping, wakes only when someone may sleep. Not robust: a dead holder wedges it.
#[derive(Default)]
pub struct FutexLock {
    state: AtomicU32,
}

/// Spins of `spin_loop()` before a contended locker sleeps (about 1–2 µs here).
const LOCK_SPINS: u32 = 100;

impl FutexLock {
    #[cold]
    fn lock_slow(&self) {
        for _ in 0..LOCK_SPINS {
            spin_loop();
            if self.state.load(Ordering::Relaxed) == 0
                && self.state.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                return;
            }
        }
        while self.state.swap(2, Ordering::Acquire) != 0 {
            futex_wait(&self.state, 2, None);
        }
    }
}

impl RawLock for FutexLock {
    #[inline]
    fn lock(&self) {
        if self.state.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_slow();
        }
    }

    #[inline]
    fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            futex_wake(&self.state, 1);
        }
    }
}

/// The peer: glibc's robust, process-shared, error-checking `pthread_mutex_t` (what shmproc's
/// Mutex was built on before its own owner-TID futex word; now the peer it is measured against).
/// A holder's death is reported as EOWNERDEAD, which `lock` repairs.
pub struct RobustMutex {
    m: std::cell::UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: a process-shared pthread mutex is made to be used from many threads and processes at
// once; every access goes through the pthread calls.
unsafe impl Sync for RobustMutex {}

impl RobustMutex {
    /// An all-zero placeholder, unusable until [`RobustMutex::init`] runs at its final address.
    pub fn uninit() -> Self {
        Self {
            // SAFETY: an all-zero pthread_mutex_t is a valid bit pattern (a plain C struct of
            // integers); `init` overwrites it before any use.
            m: std::cell::UnsafeCell::new(unsafe { std::mem::zeroed() }),
        }
    }

    /// Initialises the mutex in place: robust, process-shared, error-checking.
    ///
    /// # Safety
    /// `self` must be at its final address (shared memory; it must not move afterwards), and
    /// nobody may use it until this returns.
    pub unsafe fn init(&self) {
        let m = self.m.get();
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is a local, writable pthread_mutexattr_t.
        let r = unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) };
        assert_eq!(r, 0, "pthread_mutexattr_init");
        // SAFETY: `attr` was initialised above.
        let r = unsafe { libc::pthread_mutexattr_settype(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ERRORCHECK) };
        assert_eq!(r, 0, "pthread_mutexattr_settype");
        // SAFETY: `attr` was initialised above.
        let r = unsafe { libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED) };
        assert_eq!(r, 0, "pthread_mutexattr_setpshared");
        // SAFETY: `attr` was initialised above.
        let r = unsafe { libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST) };
        assert_eq!(r, 0, "pthread_mutexattr_setrobust");
        // SAFETY: the caller guarantees `m` is at its final address and unused; `attr` is
        // initialised.
        let r = unsafe { libc::pthread_mutex_init(m, attr.as_ptr()) };
        assert_eq!(r, 0, "pthread_mutex_init");
        // SAFETY: `attr` was initialised above and is destroyed once.
        unsafe { libc::pthread_mutexattr_destroy(attr.as_mut_ptr()) };
    }

    /// A robust mutex in fresh shared memory.
    pub fn shared() -> Shared<Self> {
        let s = Shared::new(Self::uninit());
        // SAFETY: `s` is fresh shared memory nobody else uses yet, and it never moves.
        unsafe { s.init() };
        s
    }
}

impl RawLock for RobustMutex {
    #[inline]
    fn lock(&self) {
        // SAFETY: `m` was initialised by `init` and stays mapped while `self` lives.
        let r = unsafe { libc::pthread_mutex_lock(self.m.get()) };
        if r == libc::EOWNERDEAD {
            // SAFETY: we hold the mutex after EOWNERDEAD, as pthread_mutex_consistent requires.
            let c = unsafe { libc::pthread_mutex_consistent(self.m.get()) };
            assert_eq!(c, 0, "pthread_mutex_consistent");
        } else {
            assert_eq!(r, 0, "pthread_mutex_lock");
        }
    }

    #[inline]
    fn unlock(&self) {
        // SAFETY: initialised mutex held by this thread (the caller's contract).
        let r = unsafe { libc::pthread_mutex_unlock(self.m.get()) };
        debug_assert_eq!(r, 0, "pthread_mutex_unlock");
    }
}

/// The raw_sync crate's process-shared (non-robust) pthread mutex, in shared memory.
pub struct RawSyncMutex {
    lock: Box<dyn raw_sync::locks::LockImpl>,
    _map: SharedMap,
}

impl RawSyncMutex {
    /// A raw_sync Mutex over a fresh shared page (its data pointer is unused).
    pub fn new() -> Self {
        use raw_sync::locks::LockInit;
        let map = SharedMap::new(4096);
        let base = map.ptr();
        // SAFETY: `base` is a fresh, writable, page-aligned shared page, larger than a
        // pthread_mutex_t, that lives as long as the returned lock (both are in `Self`).
        let made = unsafe { raw_sync::locks::Mutex::new(base, base) };
        let (lock, _) = made.expect("raw_sync::locks::Mutex::new");
        Self { lock, _map: map }
    }
}

// SAFETY: the lock is a process-shared pthread mutex, usable from any thread; the Box only
// holds its address.
unsafe impl Sync for RawSyncMutex {}

impl RawLock for RawSyncMutex {
    #[inline]
    fn lock(&self) {
        let g = self.lock.lock().expect("raw_sync lock");
        // Keep the lock held past the guard (unlock() releases it).
        std::mem::forget(g);
    }

    #[inline]
    fn unlock(&self) {
        self.lock.release().expect("raw_sync release");
    }
}

/// A lock and the counter it protects, side by side in shared memory.
pub struct Counted<L> {
    pub lock: L,
    pub counter: std::cell::UnsafeCell<u64>,
}

// SAFETY: `counter` is touched only while `lock` is held (`locked_increment`), or by `count` when
// no other process or thread runs.
unsafe impl<L: Sync> Sync for Counted<L> {}

impl<L: RawLock> Counted<L> {
    /// `lock` and a zero counter in fresh shared memory.
    pub fn shared(lock: L) -> Shared<Self> {
        Shared::new(Self { lock, counter: std::cell::UnsafeCell::new(0) })
    }

    /// lock, `counter += 1`, unlock.
    #[inline]
    pub fn locked_increment(&self) {
        self.lock.lock();
        let c = self.counter.get();
        // SAFETY: `lock` is held, so no one else reads or writes the counter.
        unsafe { *c += 1 };
        self.lock.unlock();
    }

    /// The counter, read under the lock.
    pub fn count(&self) -> u64 {
        self.lock.lock();
        // SAFETY: `lock` is held.
        let v = unsafe { *self.counter.get() };
        self.lock.unlock();
        v
    }
}

impl Counted<RobustMutex> {
    /// A robust mutex (initialised in place) and a zero counter in fresh shared memory.
    pub fn shared_robust() -> Shared<Self> {
        let s = Self::shared(RobustMutex::uninit());
        // SAFETY: `s` is fresh shared memory nobody else uses yet, and it never moves.
        unsafe { s.lock.init() };
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Queue floor: a raw SPSC ring of 8-byte slots between two processes
// ---------------------------------------------------------------------------------------------

/// Slots in [`SpscRing`] (a power of two).
pub const RING_SLOTS: usize = 1024;

/// A single-producer single-consumer ring of `u64`s for two processes: `head` (next to read,
/// written by the consumer) and `tail` (next to write, written by the producer) on their own
/// cache lines; each side caches the other's index and re-reads it only when it looks
/// full/empty. Waiting is spin-then-yield. The floor every Queue is measured against.
#[repr(C)]
pub struct SpscRing {
    head: Padded<AtomicU64>,
    tail: Padded<AtomicU64>,
    slots: [AtomicU64; RING_SLOTS],
}

impl SpscRing {
    /// An empty ring in fresh shared memory.
    pub fn shared() -> Shared<Self> {
        Shared::new(Self {
            head: Padded(AtomicU64::new(0)),
            tail: Padded(AtomicU64::new(0)),
            slots: [const { AtomicU64::new(0) }; RING_SLOTS],
        })
    }

    /// Pushes `values` in order (the producer side; one process only).
    pub fn produce(&self, values: impl Iterator<Item = u64>) {
        let mut tail = self.tail.load(Ordering::Relaxed);
        let mut head = self.head.load(Ordering::Acquire);
        for v in values {
            if tail - head == RING_SLOTS as u64 {
                spin_until(|| {
                    head = self.head.load(Ordering::Acquire);
                    tail - head < RING_SLOTS as u64
                });
            }
            self.slots[(tail as usize) % RING_SLOTS].store(v, Ordering::Relaxed);
            tail += 1;
            self.tail.store(tail, Ordering::Release);
        }
    }

    /// Pops `n` values, folding them into a checksum (the consumer side; one process only).
    pub fn consume(&self, n: u64) -> u64 {
        let mut head = self.head.load(Ordering::Relaxed);
        let mut tail = self.tail.load(Ordering::Acquire);
        let mut sum = 0u64;
        for _ in 0..n {
            if head == tail {
                spin_until(|| {
                    tail = self.tail.load(Ordering::Acquire);
                    head != tail
                });
            }
            sum = sum.wrapping_add(self.slots[(head as usize) % RING_SLOTS].load(Ordering::Relaxed));
            head += 1;
            self.head.store(head, Ordering::Release);
        }
        sum
    }
}

/// `iters` 8-byte messages from a producer (forked child) to a consumer (the parent) over a
/// [`SpscRing`]; the sum of what arrived is checked.
pub fn spsc_ring_2proc(iters: u64) -> Duration {
    let ring = SpscRing::shared();
    let sum = std::cell::Cell::new(0);
    let t = two_process(iters, |n| sum.set(ring.consume(n)), |n| ring.produce(0..n));
    assert_eq!(sum.get(), (0..iters).sum::<u64>(), "SPSC ring lost or garbled messages");
    t
}

// ---------------------------------------------------------------------------------------------
// Wake floor: raw futex wake round trip between two processes
// ---------------------------------------------------------------------------------------------

/// `iters` sleep/wake round trips: the parent bumps word A and FUTEX_WAKEs it; the child, asleep
/// in FUTEX_WAIT on A, wakes, bumps B and wakes the parent, asleep on B. No spinning: this is the
/// cost of two wake-ups, the floor for Event/Condition/Queue wake-ups.
pub fn futex_wake_round_trip(iters: u64) -> Duration {
    #[derive(Default)]
    struct Words {
        a: Padded<AtomicU32>,
        b: Padded<AtomicU32>,
    }
    fn wait_for(word: &AtomicU32, want: u32) {
        loop {
            let v = word.load(Ordering::Acquire);
            if v == want {
                return;
            }
            futex_wait(word, v, Some(Duration::from_secs(1)));
        }
    }
    let w = Shared::new(Words::default());
    two_process(
        iters,
        |n| {
            for k in 1..=n {
                let k = k as u32;
                w.a.store(k, Ordering::Release);
                futex_wake(&w.a, 1);
                wait_for(&w.b, k);
            }
        },
        |n| {
            for k in 1..=n {
                let k = k as u32;
                wait_for(&w.a, k);
                w.b.store(k, Ordering::Release);
                futex_wake(&w.b, 1);
            }
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Segment floor: raw shm_open / ftruncate / posix_fallocate / mmap
// ---------------------------------------------------------------------------------------------

/// A name for [`raw_segment_cycle`], unique to this process.
pub fn segment_name() -> std::ffi::CString {
    // SAFETY: getpid(2) cannot fail.
    let pid = unsafe { libc::getpid() };
    std::ffi::CString::new(format!("/shmproc-bench-seg-{pid}")).expect("no NUL in the name")
}

fn check(r: libc::c_int, what: &str) {
    assert!(r >= 0, "{what} failed: {}", std::io::Error::last_os_error());
}

fn map_fd(fd: libc::c_int, len: usize) -> *mut libc::c_void {
    // SAFETY: maps `len` bytes of a shm object at least that long, at an address of the
    // kernel's choosing; checked against MAP_FAILED.
    let p =
        unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0) };
    assert!(p != libc::MAP_FAILED, "mmap failed: {}", std::io::Error::last_os_error());
    p
}

/// One named segment's life as the OS gives it: create (`shm_open(O_CREAT|O_EXCL, 0600)` +
/// `ftruncate` + `posix_fallocate` + `mmap`), attach (a second `shm_open` + `mmap`), then
/// `munmap` ×2, `close` ×2 and `shm_unlink`. The floor of a shmproc named segment.
pub fn raw_segment_cycle(name: &std::ffi::CStr, len: usize) {
    let off = libc::off_t::try_from(len).expect("segment length fits off_t");
    // SAFETY: shm_open(3) with a NUL-terminated name.
    let fd =
        unsafe { libc::shm_open(name.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC, 0o600) };
    check(fd, "shm_open(O_CREAT|O_EXCL)");
    // SAFETY: ftruncate(2) on the fd just opened.
    check(unsafe { libc::ftruncate(fd, off) }, "ftruncate");
    // SAFETY: posix_fallocate(3) on the fd just opened; returns an errno value, not -1.
    let r = unsafe { libc::posix_fallocate(fd, 0, off) };
    assert_eq!(r, 0, "posix_fallocate failed: errno {r}");
    let a = map_fd(fd, len);
    // SAFETY: shm_open(3) of the name created above.
    let fd2 = unsafe { libc::shm_open(name.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
    check(fd2, "shm_open (attach)");
    let b = map_fd(fd2, len);
    // SAFETY: `a` is a live mapping of `len` bytes made above and used by nothing else.
    check(unsafe { libc::munmap(a, len) }, "munmap");
    // SAFETY: as above, for `b`.
    check(unsafe { libc::munmap(b, len) }, "munmap");
    // SAFETY: close(2) of an fd this function opened and closes once.
    check(unsafe { libc::close(fd) }, "close");
    // SAFETY: as above, for `fd2`.
    check(unsafe { libc::close(fd2) }, "close");
    // SAFETY: shm_unlink(3) of the name created above.
    check(unsafe { libc::shm_unlink(name.as_ptr()) }, "shm_unlink");
}

/// Removes a leftover [`segment_name`] (errors ignored: usually there is none).
pub fn unlink_quietly(name: &std::ffi::CStr) {
    // SAFETY: shm_unlink(3) with a NUL-terminated name.
    unsafe { libc::shm_unlink(name.as_ptr()) };
}

// ---------------------------------------------------------------------------------------------
// OS pipes between two processes
// ---------------------------------------------------------------------------------------------

/// `iters` round trips of 8 bytes over two pipes: parent → child → parent.
pub fn pipe_round_trip_2proc(iters: u64) -> Duration {
    use std::io::{Read, Write as _};
    let (mut down_r, mut down_w) = std::io::pipe().expect("pipe");
    let (mut up_r, mut up_w) = std::io::pipe().expect("pipe");
    two_process(
        iters,
        |n| {
            let mut buf = [0u8; 8];
            for k in 0..n {
                down_w.write_all(&k.to_ne_bytes()).expect("pipe write");
                up_r.read_exact(&mut buf).expect("pipe read (child died?)");
                assert_eq!(u64::from_ne_bytes(buf), k);
            }
        },
        |n| {
            let mut buf = [0u8; 8];
            for _ in 0..n {
                down_r.read_exact(&mut buf).expect("pipe read");
                up_w.write_all(&buf).expect("pipe write");
            }
        },
    )
}

/// `iters` 8-byte messages, one `write(2)` each, from a producer (forked child) to the parent
/// reading one message per `read`: an OS pipe as a queue.
pub fn pipe_stream_2proc(iters: u64) -> Duration {
    use std::io::{Read, Write as _};
    let (mut r, mut w) = std::io::pipe().expect("pipe");
    let sum = std::cell::Cell::new(0u64);
    let t = two_process(
        iters,
        |n| {
            let mut buf = [0u8; 8];
            let mut s = 0u64;
            for _ in 0..n {
                r.read_exact(&mut buf).expect("pipe read (child died?)");
                s = s.wrapping_add(u64::from_ne_bytes(buf));
            }
            sum.set(s);
        },
        |n| {
            for k in 0..n {
                w.write_all(&k.to_ne_bytes()).expect("pipe write");
            }
        },
    );
    assert_eq!(sum.get(), (0..iters).sum::<u64>(), "pipe lost messages");
    t
}
