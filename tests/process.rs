//! Process: exit codes, state errors, names, parents, active children, daemons.
//!
//! Every test forks, so every test takes `common::fork_lock()` and arms a watchdog; children
//! report through exit codes or shared memory only.
mod common;

use std::time::{Duration, Instant};

use common::{JOIN, finish, run};
use shmproc::{Error, Process, RawArray, RawValue, SharedMemory};

const WATCHDOG: Duration = Duration::from_secs(60);

/// A child that parks until killed; the caller must kill and join it.
fn parked() -> Process {
    let p = Process::new(|| common::park_forever());
    p.start().expect("start");
    p
}

fn kill_and_finish(p: &Process) -> i32 {
    p.kill().expect("kill");
    finish(p)
}

/// Writes `s` (at most 255 bytes) into `shm` as a length byte and the bytes.
fn put_str(shm: &SharedMemory, s: &str) {
    let b = s.as_bytes();
    let n = u8::try_from(b.len()).expect("short string");
    shm.write_at(1, b).expect("write");
    shm.write_at(0, &[n]).expect("write");
}

fn get_str(shm: &SharedMemory) -> String {
    let mut n = [0u8; 1];
    shm.read_at(0, &mut n).expect("read");
    let mut b = vec![0u8; usize::from(n[0])];
    shm.read_at(1, &mut b).expect("read");
    String::from_utf8(b).expect("utf8")
}

/// SIGKILL by pid, for a process that is not our child (a grandchild left behind by a failure).
#[allow(unsafe_code)]
fn sigkill(pid: i32) {
    // SAFETY: a plain syscall with integer arguments.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Points this (child) process's fd 2 at /dev/null.
#[allow(unsafe_code)]
fn silence_stderr() {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null").expect("/dev/null");
    // SAFETY: both descriptors are open; dup2 atomically replaces fd 2 in this process only.
    unsafe { libc::dup2(null.as_raw_fd(), 2) };
}

fn is_process_state(e: &Error) -> bool {
    matches!(e, Error::ProcessState { .. })
}

// ---- exit codes ---------------------------------------------------------------------------

#[test]
fn exitcode_return_is_0() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    assert_eq!(run(|| {}), 0);
}

#[test]
fn exitcode_exit_3_is_3() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    assert_eq!(run(|| shmproc::exit(3)), 3);
}

#[test]
fn exitcode_exit_256_wraps_to_0() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    assert_eq!(run(|| shmproc::exit(256)), 0);
}

#[test]
fn exitcode_exit_minus_1_is_255() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    assert_eq!(run(|| shmproc::exit(-1)), 255);
}

#[test]
fn exitcode_exit_from_nested_call_unwinds_destructors() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let flag = RawValue::new(0u32).expect("raw value");
    let f = flag.clone();
    struct SetOnDrop(RawValue<u32>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(1);
        }
    }
    fn deep(n: u32) {
        if n == 0 {
            shmproc::exit(7);
        }
        deep(n - 1);
    }
    let code = run(move || {
        let _d = SetOnDrop(f);
        deep(5);
    });
    assert_eq!(code, 7);
    assert_eq!(flag.load(), 1, "exit() in the closure's thread unwinds, running destructors");
}

#[test]
fn exitcode_panic_is_1() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    assert_eq!(run(|| panic!("deliberate panic in a child")), 1);
}

#[test]
fn exitcode_kill_is_minus_9() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = parked();
    assert_eq!(kill_and_finish(&p), -9);
}

#[test]
fn exitcode_terminate_is_minus_15() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = parked();
    p.terminate().expect("terminate");
    assert_eq!(finish(&p), -15);
}

#[test]
fn exitcode_is_none_while_running_and_before_start() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = Process::new(|| common::park_forever());
    assert_eq!(p.exitcode(), None, "not started");
    p.start().expect("start");
    assert_eq!(p.exitcode(), None, "running");
    assert!(p.is_alive());
    assert_eq!(kill_and_finish(&p), -9);
    assert_eq!(p.exitcode(), Some(-9), "the exit code stays");
}

#[test]
fn kill_and_terminate_after_exit_are_harmless() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = Process::new(|| shmproc::exit(4));
    p.start().expect("start");
    assert_eq!(finish(&p), 4);
    p.kill().expect("kill of a reaped child is a no-op");
    p.terminate().expect("terminate of a reaped child is a no-op");
    assert_eq!(p.exitcode(), Some(4));
}

// ---- state errors -------------------------------------------------------------------------

#[test]
fn start_twice_is_a_state_error() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = parked();
    let e = p.start().expect_err("second start while running");
    assert!(is_process_state(&e), "{e:?}");
    assert_eq!(kill_and_finish(&p), -9);
    let e = p.start().expect_err("start after the child ended");
    assert!(is_process_state(&e), "{e:?}");
}

#[test]
fn join_before_start_is_a_state_error() {
    let p = Process::new(|| {});
    for e in [p.join().expect_err("join"), p.join_timeout(Duration::ZERO).expect_err("join_timeout")] {
        assert!(is_process_state(&e), "{e:?}");
    }
    let e = p.try_join().expect_err("try_join");
    assert!(is_process_state(&e), "{e:?}");
    assert!(!p.is_alive());
    assert_eq!(p.pid(), None);
    let e = p.kill().expect_err("kill before start");
    assert!(is_process_state(&e), "{e:?}");
    let e = p.terminate().expect_err("terminate before start");
    assert!(is_process_state(&e), "{e:?}");
}

#[test]
fn close_while_running_is_a_state_error() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = parked();
    let e = p.close().expect_err("close while running");
    assert!(is_process_state(&e), "{e:?}");
    assert!(p.is_alive(), "a refused close leaves the process alone");
    assert_eq!(kill_and_finish(&p), -9);
}

#[test]
fn close_after_join_then_every_call_errors() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = Process::new(|| {}).with_name("closing");
    p.start().expect("start");
    assert_eq!(finish(&p), 0);
    p.close().expect("close after join");
    p.close().expect("close is idempotent");
    assert_eq!(p.name(), "closing", "the name stays readable");
    for e in [
        p.join().expect_err("join"),
        p.join_timeout(Duration::ZERO).expect_err("join_timeout"),
        p.try_join().expect_err("try_join"),
        p.start().expect_err("start"),
        p.kill().expect_err("kill"),
        p.terminate().expect_err("terminate"),
    ] {
        assert!(is_process_state(&e), "{e:?}");
    }
    assert!(!p.is_alive());
    assert_eq!(p.exitcode(), None);
    assert_eq!(p.pid(), None);
}

#[test]
fn close_before_start_then_start_errors() {
    let p = Process::new(|| {});
    p.close().expect("close an unstarted process");
    let e = p.start().expect_err("start after close");
    assert!(is_process_state(&e), "{e:?}");
}

// ---- join ---------------------------------------------------------------------------------

#[test]
fn join_timeout_false_on_sleeping_child_then_true_after_kill() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = parked();
    let timeout = Duration::from_millis(200);
    let t0 = Instant::now();
    let ended = p.join_timeout(timeout).expect("join_timeout");
    let waited = t0.elapsed();
    assert!(!ended, "a parked child does not end");
    assert!(waited >= timeout, "join_timeout returned after {waited:?}, before its {timeout:?}");
    assert!(p.is_alive());
    assert!(!p.try_join().expect("try_join"), "try_join of a running child");
    p.kill().expect("kill");
    assert!(p.join_timeout(JOIN).expect("join_timeout"), "a killed child ends");
    assert!(p.try_join().expect("try_join"));
    p.join().expect("joining again is fine");
    assert_eq!(p.exitcode(), Some(-9));
}

#[test]
fn join_zero_timeout_returns_at_once() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = parked();
    assert!(!p.join_timeout(Duration::ZERO).expect("join_timeout(0)"));
    assert_eq!(kill_and_finish(&p), -9);
}

// ---- identity -----------------------------------------------------------------------------

#[test]
fn is_alive_and_pid() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let seen = RawValue::new(0i32).expect("raw value");
    let p = Process::new({
        let seen = seen.clone();
        move || {
            seen.store(shmproc::current_process().pid);
            if std::process::id() as i32 != shmproc::current_process().pid {
                shmproc::exit(2);
            }
            common::park_forever()
        }
    });
    assert!(!p.is_alive(), "not alive before start");
    assert_eq!(p.pid(), None);
    p.start().expect("start");
    assert!(p.is_alive());
    let pid = p.pid().expect("pid after start");
    assert_ne!(pid, std::process::id() as i32);
    assert!(common::wait_for(JOIN, || seen.load() != 0), "child never reported its pid");
    assert_eq!(seen.load(), pid, "the child's own pid is the one the parent sees");
    assert!(p.is_alive());
    assert_eq!(kill_and_finish(&p), -9);
    assert!(!p.is_alive());
    assert_eq!(p.pid(), Some(pid), "pid stays known after the end");
    assert!(common::is_dead(pid), "reaped");
}

#[test]
fn default_names_process_n_and_grandchild_process_n_m() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    assert_eq!(shmproc::current_process().name, "MainProcess");
    let child_name = SharedMemory::new(256).expect("shm");
    let gc_name = SharedMemory::new(256).expect("shm");
    let p = Process::new({
        let (child_name, gc_name) = (child_name.clone(), gc_name.clone());
        move || {
            let me = shmproc::current_process().name;
            put_str(&child_name, &me);
            let expected = format!("{me}:1");
            let gc = Process::new({
                let (gc_name, expected, me) = (gc_name.clone(), expected.clone(), me.clone());
                move || {
                    let gme = shmproc::current_process().name;
                    put_str(&gc_name, &gme);
                    let parent = shmproc::parent_process().expect("a grandchild has a parent");
                    if gme != expected {
                        shmproc::exit(10);
                    }
                    if parent.name != me {
                        shmproc::exit(11);
                    }
                }
            });
            if gc.name() != expected {
                shmproc::exit(12);
            }
            if gc.start().is_err() {
                shmproc::exit(13);
            }
            if !gc.join_timeout(Duration::from_secs(20)).unwrap_or(false) {
                let _ = gc.kill();
                shmproc::exit(14);
            }
            shmproc::exit(gc.exitcode().unwrap_or(15));
        }
    });
    let name = p.name().to_owned();
    let n = name.strip_prefix("Process-").expect("default name is Process-N");
    assert!(!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()), "{name}");
    p.start().expect("start");
    assert_eq!(finish(&p), 0, "the child (or grandchild) saw a wrong name; child saw {:?}", get_str(&child_name));
    assert_eq!(get_str(&child_name), name);
    assert_eq!(get_str(&gc_name), format!("{name}:1"));
}

#[test]
fn default_names_are_numbered_in_creation_order() {
    let a = Process::new(|| {});
    let b = Process::new(|| {});
    let num = |p: &Process| -> usize { p.name().strip_prefix("Process-").expect("Process-N").parse().expect("N") };
    assert!(num(&b) > num(&a), "{} then {}", a.name(), b.name());
}

#[test]
fn custom_name_is_seen_by_the_child() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = Process::new(|| {
        if shmproc::current_process().name != "worker-7" {
            shmproc::exit(1);
        }
    })
    .with_name("worker-7");
    assert_eq!(p.name(), "worker-7");
    p.start().expect("start");
    assert_eq!(finish(&p), 0, "the child saw another name");
}

#[test]
fn parent_process_is_none_in_main_and_the_parent_in_a_child() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    assert!(shmproc::parent_process().is_none(), "the main process has no shmproc parent");
    let me = std::process::id() as i32;
    let code = run(move || {
        let Some(parent) = shmproc::parent_process() else { shmproc::exit(2) };
        if parent.pid != me {
            shmproc::exit(3);
        }
        if !parent.is_alive() {
            shmproc::exit(4);
        }
        if parent.name != "MainProcess" {
            shmproc::exit(5);
        }
    });
    assert_eq!(code, 0);
}

#[test]
fn parent_process_is_alive_is_false_once_the_parent_died() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    // P starts non-daemon C; C waits (bounded) until P is gone, then reports through shared memory.
    let report = RawValue::new(0u32).expect("raw value");
    let c_pid = RawValue::new(0i32).expect("raw value");
    let p = Process::new({
        let (report, c_pid) = (report.clone(), c_pid.clone());
        move || {
            let c = Process::new(move || {
                c_pid.store(shmproc::current_process().pid);
                let parent = shmproc::parent_process().expect("parent");
                let gone = common::wait_for(Duration::from_secs(30), || !parent.is_alive());
                report.store(if gone { 1 } else { 2 });
            });
            c.start().expect("start");
            common::park_forever()
        }
    });
    p.start().expect("start");
    assert!(common::wait_for(JOIN, || c_pid.load() != 0), "grandchild never started");
    assert_eq!(kill_and_finish(&p), -9);
    assert!(common::wait_for(JOIN, || report.load() != 0), "grandchild never reported");
    assert_eq!(report.load(), 1, "parent_process().is_alive() stayed true after the parent died");
    assert!(common::wait_for(JOIN, || common::is_dead(c_pid.load())), "grandchild did not end");
}

#[test]
fn active_children_lists_running_not_finished() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let running = parked();
    let done = Process::new(|| {});
    done.start().expect("start");
    assert_eq!(finish(&done), 0);
    let pids: Vec<i32> = shmproc::active_children().iter().filter_map(Process::pid).collect();
    assert!(pids.contains(&running.pid().expect("pid")), "{pids:?}");
    assert!(!pids.contains(&done.pid().expect("pid")), "{pids:?}");
    assert_eq!(kill_and_finish(&running), -9);
    let pids: Vec<i32> = shmproc::active_children().iter().filter_map(Process::pid).collect();
    assert!(!pids.contains(&running.pid().expect("pid")), "{pids:?}");
}

#[test]
fn active_children_reaps_a_child_nobody_joined() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = Process::new(|| {});
    p.start().expect("start");
    let pid = p.pid().expect("pid");
    // Never joined: active_children() must notice it ended and reap it.
    let gone = common::wait_for(JOIN, || !shmproc::active_children().iter().any(|c| c.pid() == Some(pid)));
    assert!(gone, "a finished child stayed in active_children()");
    assert!(common::is_dead(pid));
    assert_eq!(p.exitcode(), Some(0));
}

#[test]
fn cpu_count_is_at_least_1() {
    assert!(shmproc::cpu_count() >= 1);
}

// ---- daemons ------------------------------------------------------------------------------

#[test]
fn daemon_child_cannot_start_children() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let p = Process::new(|| {
        if !shmproc::current_process().daemon {
            shmproc::exit(2);
        }
        match Process::new(|| {}).start() {
            Err(Error::ProcessState { .. }) => shmproc::exit(0),
            Ok(()) => shmproc::exit(3),
            Err(_) => shmproc::exit(4),
        }
    })
    .daemon(true);
    assert!(p.is_daemon());
    p.start().expect("start");
    assert_eq!(finish(&p), 0);
}

#[test]
fn daemon_child_dies_when_its_parent_is_sigkilled() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let d_pid = RawValue::new(0i32).expect("raw value");
    let p = Process::new({
        let d_pid = d_pid.clone();
        move || {
            let d = Process::new(move || {
                d_pid.store(shmproc::current_process().pid);
                common::park_forever()
            })
            .daemon(true);
            if d.start().is_err() {
                shmproc::exit(2);
            }
            common::park_forever()
        }
    });
    assert!(!p.is_daemon());
    p.start().expect("start");
    assert!(common::wait_for(JOIN, || d_pid.load() != 0), "the daemon never started");
    let d = d_pid.load();
    assert!(!common::is_dead(d));
    assert_eq!(kill_and_finish(&p), -9);
    let died = common::wait_for(JOIN, || common::is_dead(d));
    if !died {
        // Do not leave it behind: it is not our child, so signal it by pid.
        sigkill(d);
    }
    assert!(died, "the daemon outlived its SIGKILLed parent");
}

#[test]
fn non_daemon_child_survives_its_parent_sigkill() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    // The contrast to the daemon test: a non-daemon grandchild is orphaned, not killed.
    let c_pid = RawValue::new(0i32).expect("raw value");
    let release = RawValue::new(0u32).expect("raw value");
    let p = Process::new({
        let (c_pid, release) = (c_pid.clone(), release.clone());
        move || {
            let c = Process::new(move || {
                c_pid.store(shmproc::current_process().pid);
                let _ = common::wait_for(Duration::from_secs(30), || release.load() != 0);
            });
            if c.start().is_err() {
                shmproc::exit(2);
            }
            common::park_forever()
        }
    });
    p.start().expect("start");
    assert!(common::wait_for(JOIN, || c_pid.load() != 0), "the grandchild never started");
    let c = c_pid.load();
    assert_eq!(kill_and_finish(&p), -9);
    assert!(!common::is_dead(c), "a non-daemon child must outlive its parent");
    release.store(1);
    assert!(common::wait_for(JOIN, || common::is_dead(c)), "the orphan did not end when told to");
}

// ---- the tutorial: many processes ---------------------------------------------------------

#[test]
fn ten_processes_started_and_joined_in_order() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let squares = RawArray::<u64>::new(10).expect("raw array");
    for i in 0..10usize {
        let p = Process::new({
            let squares = squares.clone();
            move || {
                squares.store(i, (i * i) as u64).expect("in range");
            }
        });
        p.start().expect("start");
        assert_eq!(finish(&p), 0);
        assert_eq!(squares.load(i).expect("in range"), (i * i) as u64, "child {i} finished before the next");
    }
    assert_eq!(squares.to_vec(), (0..10u64).map(|i| i * i).collect::<Vec<_>>());
}

#[test]
fn ten_processes_run_concurrently() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let started = RawValue::new(0u32).expect("raw value");
    let out = RawArray::<u64>::new(10).expect("raw array");
    let procs: Vec<Process> = (0..10usize)
        .map(|i| {
            let (started, out) = (started.clone(), out.clone());
            Process::new(move || {
                started.fetch_add(1);
                // Every child waits until all ten run at once: proof they are concurrent.
                if !common::wait_for(Duration::from_secs(30), || started.load() == 10) {
                    shmproc::exit(2);
                }
                out.store(i, (i * i) as u64).expect("in range");
            })
        })
        .collect();
    for p in &procs {
        p.start().expect("start");
    }
    let names: std::collections::HashSet<&str> = procs.iter().map(Process::name).collect();
    assert_eq!(names.len(), 10, "default names are distinct");
    for p in &procs {
        assert_eq!(finish(p), 0);
    }
    assert_eq!(out.to_vec(), (0..10u64).map(|i| i * i).collect::<Vec<_>>());
    assert!(procs.iter().all(|p| !p.is_alive()));
}

// ---- fork from a multithreaded parent -----------------------------------------------------

/// Starts `n` children running `f` while `noise` runs on another thread; every child must end
/// within 10 s with `want`.
fn children_end_despite(n: usize, want: i32, f: fn(), noise: fn(&std::sync::atomic::AtomicBool)) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let t = std::thread::spawn({
        let stop = stop.clone();
        move || noise(&stop)
    });
    let mut failure = None;
    for i in 0..n {
        let p = Process::new(f);
        p.start().expect("start");
        if !p.join_timeout(Duration::from_secs(10)).expect("join") {
            let _ = p.kill();
            let _ = p.join_timeout(JOIN);
            failure = Some(format!("child {i} hung"));
            break;
        }
        if p.exitcode() != Some(want) {
            failure = Some(format!("child {i} ended with {:?}", p.exitcode()));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    t.join().expect("noise thread");
    assert_eq!(failure, None);
}

#[test]
fn child_panic_does_not_hang_while_parent_threads_panic() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(Duration::from_secs(120));
    // Another thread of the parent keeps panicking: at some fork it is inside std's panic hook,
    // holding its locks. The child's own panic must still end it with exit code 1.
    children_end_despite(
        100,
        1,
        || {
            silence_stderr(); // a hundred panic messages say nothing more than one
            panic!("deliberate panic in a child")
        },
        |stop| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::thread::spawn(|| panic!("deliberate panic in a parent thread")).join();
            }
        },
    );
}

#[test]
fn child_exit_does_not_hang_while_a_parent_thread_uses_stdout() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(Duration::from_secs(120));
    // Another thread of the parent keeps taking stdout's lock: a child forked while it held it
    // used to hang in its final flush.
    children_end_despite(
        200,
        0,
        || {},
        |stop| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = std::io::stdout().lock();
                std::hint::black_box(&out);
                drop(out);
            }
        },
    );
}

#[test]
fn join_timeout_with_a_huge_timeout_returns_when_the_child_ends() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let go = RawValue::new(0u32).expect("raw value");
    let p = Process::new({
        let go = go.clone();
        move || {
            if !common::wait_for(JOIN, || go.load() == 1) {
                shmproc::exit(2);
            }
        }
    });
    p.start().expect("start");
    let (tx, rx) = std::sync::mpsc::channel();
    let joiner = std::thread::spawn({
        let p = p.clone();
        move || {
            let _ = tx.send(p.join_timeout(Duration::MAX).map_err(|e| e.to_string()));
        }
    });
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err(), "returned while the child runs");
    go.store(1);
    assert_eq!(rx.recv_timeout(JOIN).expect("join_timeout(MAX) must return once the child ended"), Ok(true));
    joiner.join().expect("joiner");
    assert_eq!(p.exitcode(), Some(0));
}

#[test]
fn exit_from_another_thread_of_the_child() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let code = run(|| {
        let t = std::thread::spawn(|| shmproc::exit(5));
        let _ = t.join();
        common::park_forever()
    });
    assert_eq!(code, 5);
}

#[test]
fn grandchildren_are_numbered_per_parent() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let code = run(|| {
        let me = shmproc::current_process().name;
        let a = Process::new(|| {});
        let b = Process::new(|| {});
        let c = Process::new(|| {}).with_name("custom");
        let d = Process::new(|| {});
        if a.name() != format!("{me}:1") || b.name() != format!("{me}:2") || c.name() != "custom" {
            shmproc::exit(2);
        }
        // A custom name still uses a number, as in Python.
        if d.name() != format!("{me}:4") {
            shmproc::exit(3);
        }
    });
    assert_eq!(code, 0);
}

#[test]
fn a_child_joins_its_non_daemon_children_before_it_ends() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    // Python's child runs _exit_function after its target: it joins its non-daemon children.
    let (started, go, done) =
        (RawValue::new(0u32).expect("rv"), RawValue::new(0u32).expect("rv"), RawValue::new(0u32).expect("rv"));
    let p = Process::new({
        let (started, go, done) = (started.clone(), go.clone(), done.clone());
        move || {
            let c = Process::new(move || {
                started.store(1);
                if common::wait_for(Duration::from_secs(30), || go.load() == 1) {
                    done.store(1);
                }
            });
            c.start().expect("start grandchild");
            // Returns without joining it.
        }
    });
    p.start().expect("start");
    assert!(common::wait_for(JOIN, || started.load() == 1), "the grandchild never started");
    let ended_early = p.join_timeout(Duration::from_millis(100)).expect("join_timeout");
    go.store(1);
    assert_eq!(finish(&p), 0);
    assert!(!ended_early, "the child ended while its non-daemon child still ran");
    assert_eq!(done.load(), 1, "the grandchild finished before its parent ended");
}

#[test]
fn only_the_creating_process_may_start_or_join() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let running = parked();
    let unstarted = Process::new(|| {});
    let code = run({
        let (running, unstarted) = (running.clone(), unstarted.clone());
        move || {
            // Handles inherited through the fork belong to the parent.
            if !matches!(running.join_timeout(Duration::ZERO), Err(Error::ProcessState { .. })) {
                shmproc::exit(2);
            }
            if !matches!(running.join(), Err(Error::ProcessState { .. })) {
                shmproc::exit(3);
            }
            if !matches!(unstarted.start(), Err(Error::ProcessState { .. })) {
                shmproc::exit(4);
            }
            if !shmproc::active_children().is_empty() {
                shmproc::exit(5); // the parent's children are not ours
            }
        }
    });
    assert_eq!(code, 0, "2/3: join allowed, 4: start allowed, 5: inherited children");
    assert!(running.is_alive(), "the child's attempts left our child alone");
    assert_eq!(kill_and_finish(&running), -9);
    // The unstarted one is still ours to start.
    unstarted.start().expect("start");
    assert_eq!(finish(&unstarted), 0);
}

// ---- the main process's exit: terminate daemons, join the rest ------------------------------

const ROLE_ENV: &str = "SHMPROC_FTESTS_MAIN_EXIT";

#[test]
fn main_process_exit_terminates_daemons_then_joins_children() {
    if let Ok(name) = std::env::var(ROLE_ENV) {
        // The re-run test binary: start a daemon and a child, then exit the process while this
        // (starting) thread is still alive, so only the at-exit hook can stop the daemon.
        let slots = RawArray::<i32>::open(&name).expect("open slots");
        let d = Process::new({
            let slots = slots.clone();
            move || {
                slots.store(0, shmproc::current_process().pid).expect("store");
                common::park_forever()
            }
        })
        .daemon(true);
        d.start().expect("start daemon");
        let c = Process::new({
            let slots = slots.clone();
            move || {
                // Wait until the daemon is gone, then report whether our parent still runs
                // (it must: it is joining us).
                let d = loop {
                    let d = slots.load(0).expect("load");
                    if d != 0 {
                        break d;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                };
                if !common::wait_for(Duration::from_secs(30), || common::is_dead(d)) {
                    slots.store(1, 3).expect("store");
                    return;
                }
                let parent_alive = shmproc::parent_process().is_some_and(|p| p.is_alive());
                slots.store(1, if parent_alive { 1 } else { 2 }).expect("store");
            }
        });
        c.start().expect("start child");
        assert!(common::wait_for(Duration::from_secs(30), || slots.load(0).expect("load") != 0));
        std::process::exit(0);
    }
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let name = common::unique_name("main-exit");
    let slots = RawArray::<i32>::create(&name, 2).expect("create");
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = std::process::Command::new(exe)
        .args(["main_process_exit_terminates_daemons_then_joins_children", "--exact", "--test-threads=1"])
        .env(ROLE_ENV, &name)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("re-run the test binary");
    let mut status = None;
    let ended = common::wait_for(JOIN, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
    }
    slots.unlink().expect("unlink");
    assert!(ended, "the re-run process did not exit");
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let d = slots.load(0).expect("load");
    assert_ne!(d, 0, "the daemon never started");
    assert!(common::is_dead(d), "the daemon outlived the main process");
    assert_eq!(
        slots.load(1).expect("load"),
        1,
        "2: the main process did not wait for its child, 3: the daemon was not terminated at exit"
    );
}
