//! What runs in the child after the fork, and what a process knows about itself.
//!
//! Per-process state lives in [`ProcessSlot`]s, never behind a lock: in a child forked from a
//! multithreaded parent a lock held by another thread at the instant of the fork stays held for
//! ever, so the child installs fresh state instead of locking the inherited one.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use super::{CHILD_COUNTER, CurrentProcess, Target};
use crate::sys;
use crate::sys::proc::ProcessSlot;

/// What a child is told about itself.
pub(super) struct ChildInfo {
    pub name: String,
    pub daemon: bool,
    pub parent_pid: i32,
    pub identity: Vec<usize>,
}

/// This process's own description (empty in the main process).
struct Me {
    name: String,
    daemon: bool,
    identity: Vec<usize>,
    parent: (i32, String, u64),
    /// The thread running the closure, for `exit`.
    main_tid: i32,
}

static ME: ProcessSlot<Me> = ProcessSlot::new();

/// The payload `exit` unwinds with, caught by `run`.
struct ExitRequest(i32);

/// Whether this process was started by `Process::start`.
pub(super) fn in_child() -> bool {
    ME.get().is_some()
}

/// Whether this process is a daemon child.
pub(super) fn current_is_daemon() -> bool {
    ME.get().is_some_and(|m| m.daemon)
}

/// The identity path of the next child: Python names the `n`-th child of `Process-1` `Process-1:n`.
pub(super) fn child_identity(n: usize) -> Vec<usize> {
    let mut id = ME.get().map(|m| m.identity.clone()).unwrap_or_default();
    id.push(n);
    id
}

/// `Process-1:2` for identity `[1, 2]`.
pub(super) fn name_of(identity: &[usize]) -> String {
    let parts: Vec<String> = identity.iter().map(ToString::to_string).collect();
    format!("Process-{}", parts.join(":"))
}

pub(super) fn current() -> CurrentProcess {
    match ME.get() {
        Some(m) => CurrentProcess { name: m.name.clone(), pid: sys::proc::getpid(), daemon: m.daemon },
        None => CurrentProcess { name: "MainProcess".to_owned(), pid: sys::proc::getpid(), daemon: false },
    }
}

pub(super) fn parent() -> Option<(i32, String, u64)> {
    ME.get().map(|m| m.parent.clone())
}

/// Rust's stdout and stderr locks, taken (and flushed through) by the parent just before the
/// fork and released on both sides right after it.
///
/// Holding them across the fork means no other parent thread holds them at that instant, so the
/// child finds them free. Without this, a thread printing between the parent's flush and the
/// fork left the lock held for ever in the child, which then hung in its final `flush_stdio`.
pub(super) struct StdioLocks {
    _out: std::io::StdoutLock<'static>,
    _err: std::io::StderrLock<'static>,
}

/// Locks stdout and stderr (in that order) and flushes them, so buffered output is not written
/// twice (once per process).
pub(super) fn lock_and_flush_stdio() -> StdioLocks {
    let mut out = std::io::stdout().lock();
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    let _ = err.flush();
    StdioLocks { _out: out, _err: err }
}

/// Flushes Rust's stdout and stderr so buffered output is not written twice (once per process).
pub(super) fn flush_stdio() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// Installs, once and before the first fork, a panic hook that keeps a child's panic from
/// hanging.
///
/// std's default hook takes locks (its backtrace lock, the test harness's output-capture buffer,
/// stderr's lock). A child forked while another parent thread held one of them (that thread was
/// panicking or printing) finds it held for ever, and its own panic would block in the hook
/// instead of exiting with 1. In a child this hook formats the message and writes it straight to
/// fd 2 without any lock; in the parent it defers to the hook that was installed before.
/// It is installed by the parent because replacing a hook takes a lock too.
pub(super) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::thread::panicking() {
        return; // set_hook would panic; a later start installs it.
    }
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match ME.get() {
            Some(me) => {
                let msg = format!("process {:?} (pid {}) {info}\n", me.name, sys::proc::getpid());
                sys::proc::write_stderr_unlocked(msg.as_bytes());
            }
            None => previous(info),
        }));
    });
}

fn parent_name() -> String {
    ME.get().map_or_else(|| "MainProcess".to_owned(), |m| m.name.clone())
}

/// The child's whole life after the fork. Never returns.
pub(super) fn run(info: ChildInfo, target: Target) -> ! {
    let parent_start = sys::proc::start_time(info.parent_pid).unwrap_or(0);
    let parent_name = parent_name();
    ME.set(Me {
        name: info.name,
        daemon: info.daemon,
        identity: info.identity,
        parent: (info.parent_pid, parent_name, parent_start),
        main_tid: sys::proc::gettid(),
    });
    CHILD_COUNTER.store(0, Ordering::Relaxed);
    super::registry::forget_inherited();
    if info.daemon {
        // Ask for SIGKILL when the parent goes, then check it did not go before we asked.
        if sys::proc::set_parent_death_kill().is_err() || sys::proc::getppid() != info.parent_pid {
            sys::proc::exit_now(1);
        }
    }
    let _ = sys::proc::stdin_from_devnull();
    let code = match catch_unwind(AssertUnwindSafe(target)) {
        Ok(()) => 0,
        Err(payload) => match payload.downcast::<ExitRequest>() {
            Ok(req) => req.0 & 0xff,
            // The panic hook (`install_panic_hook`) already wrote the message to stderr.
            Err(_) => 1,
        },
    };
    // As Python's child does after its target, whatever the outcome: terminate our daemon
    // children and wait for the others.
    super::registry::finish_children();
    flush_stdio();
    sys::proc::exit_now(code)
}

/// Ends the current process with exit code `code & 0xff`, as Python's `sys.exit(code)`.
///
/// In a child started by [`Process`](crate::Process), called from the thread running the
/// closure, it unwinds to the child's entry (running destructors on the way) and the child exits
/// with that code; from another thread of the child it flushes stdio and exits at once. In the
/// main process it is `std::process::exit(code)`.
///
/// # Example
/// ```
/// let p = shmproc::Process::new(|| shmproc::exit(3));
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(3));
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn exit(code: i32) -> ! {
    match ME.get() {
        None => {
            flush_stdio();
            std::process::exit(code)
        }
        Some(m) if m.main_tid == sys::proc::gettid() => std::panic::resume_unwind(Box::new(ExitRequest(code))),
        Some(_) => {
            flush_stdio();
            sys::proc::exit_now(code & 0xff)
        }
    }
}
