//! Helpers shared by the integration tests: serialise forking tests, turn hangs into failures,
//! make unique names, and wait for conditions with a bound.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Serialises tests that fork: a fork while another test thread forks or holds locks is the
/// riskiest moment of a multithreaded harness. Poisoning (a failed test) does not matter here.
pub fn fork_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Aborts the whole test binary (with a message naming the test) if it is still alive after the
/// given time: `cargo test` must fail, never hang. Dropping it disarms it.
pub struct Watchdog {
    cancel: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Arms a watchdog for the calling test.
    pub fn new(limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let name = std::thread::current().name().unwrap_or("<unnamed test>").to_owned();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: test {name} still running after {limit:?}; aborting the test binary");
                for child in shmproc::active_children() {
                    let _ = child.kill();
                }
                std::process::abort();
            }
        });
        Watchdog { cancel: Some(tx), thread: Some(thread) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.cancel.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A name no other test or run uses: `shmproc-test-<pid>-<tag>-<n>`.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("shmproc-test-{}-{}-{}", std::process::id(), tag, N.fetch_add(1, Ordering::Relaxed))
}

/// Polls `cond` every millisecond until it holds (true) or `limit` passes (false).
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The calling thread's kernel thread id.
pub fn current_tid() -> i32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).expect("a tid")
}

/// Whether thread `tid` (of any process: a single-threaded child's tid is its pid) is asleep
/// in a futex system call (`futex` 202 or `futex_waitv` 449 on x86_64): blocked inside a wait,
/// not spinning before it.
pub fn in_futex_call(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/task/{tid}/syscall"))
        .is_ok_and(|s| matches!(s.split_whitespace().next(), Some("202" | "449")))
}

/// Waits (at most `limit`) until thread or single-threaded process `tid` sleeps in a futex
/// call; false if it never did.
pub fn await_futex_sleep(tid: i32, limit: Duration) -> bool {
    wait_for(limit, || in_futex_call(tid))
}

/// Whether `/dev/shm/<name>` exists.
pub fn shm_exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

/// Whether process `pid` is gone or a zombie (read from /proc).
pub fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let after = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
            matches!(after.split_whitespace().next(), Some("Z") | Some("X") | None)
        }
    }
}

/// Sleeps in a child until it is killed, without ever returning.
pub fn park_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Generous bound for a child that should end promptly (the watchdog is the hard limit).
pub const JOIN: Duration = Duration::from_secs(30);

/// Starts a child process running `f` (exit code 0 unless `f` panics or calls `shmproc::exit`).
pub fn start(f: impl FnOnce() + Send + 'static) -> shmproc::Process {
    let p = shmproc::Process::new(f);
    p.start().expect("start");
    p
}

/// Joins `p` within [`JOIN`] (killing it if it does not end) and returns its exit code.
pub fn finish(p: &shmproc::Process) -> i32 {
    if !p.join_timeout(JOIN).expect("join_timeout") {
        let _ = p.kill();
        let _ = p.join_timeout(JOIN);
        panic!("child {} did not end within {JOIN:?}", p.name());
    }
    p.exitcode().expect("a joined child has an exit code")
}

/// Starts `f` in a child and returns its exit code.
pub fn run(f: impl FnOnce() + Send + 'static) -> i32 {
    finish(&start(f))
}

/// Joins `p` (bounded) and asserts it exited 0.
pub fn join_ok(p: &shmproc::Process) {
    assert_eq!(finish(p), 0, "child {} failed", p.name());
}
