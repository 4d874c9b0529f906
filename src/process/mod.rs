//! Processes: Python's `Process`, `active_children()`, `current_process()`, `parent_process()`,
//! `cpu_count()`, and [`exit`].
//!
//! The start method is fork: the child inherits every segment (every anonymous `Mutex`, `Value`,
//! `Queue`, ... created before `start`). Child prologue (DESIGN.md §3): Rust's stdout/stderr are
//! flushed before the fork; in the child, the per-process identity is reset, stdin becomes
//! /dev/null, a daemon child asks for SIGKILL when its parent dies (and exits at once if the
//! parent is already gone), the closure runs under `catch_unwind`, stdio is flushed and the child
//! ends with `_exit`: the parent's destructors and atexit handlers never run in the child.
//! The parent opens a pidfd right after the fork (no pid-reuse race), waits by polling it, reaps
//! with `waitpid`, and never installs a SIGCHLD handler.

mod child;
mod registry;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex as LocalMutex;

use crate::error::{Error, Result};
use crate::sys;
use crate::sys::clock::deadline_after;

pub use child::exit;

type Target = Box<dyn FnOnce() + Send + 'static>;

/// A child process running a closure: Python's `multiprocessing.Process`.
///
/// Build it with [`new`](Self::new) (and optionally [`with_name`](Self::with_name) /
/// [`daemon`](Self::daemon)), then [`start`](Self::start) it and [`join`](Self::join) it.
/// Handles are cheap clones of one process object.
///
/// `exitcode()` is `None` while the child runs, `0` after the closure returned, `n` after
/// [`shmproc::exit(n)`](exit), `1` after a panic (the message goes to stderr), and `-N` after
/// signal N (`terminate()` gives -15, `kill()` -9), as in Python.
///
/// # Fork from a multithreaded parent
/// The child is a copy of the parent with one thread: locks that other threads held at the
/// instant of the fork stay held in the child for ever. The closure should touch only what it
/// captured (shmproc objects are safe: they are process-shared by design). Avoid taking locks
/// of process-local state other threads use (stdout's lock included: report through shared
/// memory or exit codes, or print only from single-threaded parents). `start` itself holds
/// Rust's stdout and stderr locks across the fork (so the child's final flush cannot block on
/// them), and a child's panic message is written straight to fd 2 without std's locks.
///
/// # Example
/// ```
/// use shmproc::{Process, Value};
///
/// let total = Value::new(0i64)?;
/// let p = Process::new({
///     let total = total.clone();
///     move || total.set(42).expect("set")
/// })
/// .with_name("worker");
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(0));
/// assert_eq!(total.get()?, 42);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    daemon: bool,
    identity: Vec<usize>,
    creator_pid: i32,
    target: LocalMutex<Option<Target>>,
    state: LocalMutex<State>,
}

enum State {
    Initial,
    Started { pid: i32, pidfd: OwnedFd, exitcode: Option<i32> },
    Closed,
}

/// Children started by this process, for numbering names.
static CHILD_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl std::fmt::Debug for Process {
    /// Python's repr: `<Process name='Process-1' pid=123 started>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.lock();
        match &*state {
            State::Initial => write!(f, "<Process name='{}' initial>", self.inner.name),
            State::Started { pid, exitcode: None, .. } => {
                write!(
                    f,
                    "<Process name='{}' pid={} started{}>",
                    self.inner.name,
                    pid,
                    if self.inner.daemon { " daemon" } else { "" }
                )
            }
            State::Started { pid, exitcode: Some(c), .. } => {
                write!(f, "<Process name='{}' pid={} stopped exitcode={}>", self.inner.name, pid, c)
            }
            State::Closed => write!(f, "<Process name='{}' closed>", self.inner.name),
        }
    }
}

impl Process {
    /// A process that will run `target` once started. Named `Process-N` (`Process-N:M` in a
    /// child), not a daemon.
    pub fn new(target: impl FnOnce() + Send + 'static) -> Process {
        let n = CHILD_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        let name = child::name_of(&child::child_identity(n));
        Process {
            inner: Arc::new(Inner {
                name,
                daemon: false,
                identity: child::child_identity(n),
                creator_pid: sys::proc::getpid(),
                target: LocalMutex::new(Some(Box::new(target))),
                state: LocalMutex::new(State::Initial),
            }),
        }
    }

    fn rebuild(self, f: impl FnOnce(&mut String, &mut bool)) -> Process {
        let mut name = self.inner.name.clone();
        let mut daemon = self.inner.daemon;
        f(&mut name, &mut daemon);
        let target = self.inner.target.lock().take();
        let state = std::mem::replace(&mut *self.inner.state.lock(), State::Initial);
        Process {
            inner: Arc::new(Inner {
                name,
                daemon,
                identity: self.inner.identity.clone(),
                creator_pid: self.inner.creator_pid,
                target: LocalMutex::new(target),
                state: LocalMutex::new(state),
            }),
        }
    }

    /// Sets the name (builder). Names need not be unique.
    pub fn with_name(self, name: impl Into<String>) -> Process {
        let name = name.into();
        self.rebuild(|n, _| *n = name)
    }

    /// Makes it a daemon (builder): it is killed when its parent dies, even by SIGKILL, and
    /// terminated when the parent exits normally. A daemon may not start children.
    ///
    /// Linux delivers the parent-death signal when the *thread* that started the child exits:
    /// start daemons from a thread that lives as long as they should.
    pub fn daemon(self, daemon: bool) -> Process {
        self.rebuild(|_, d| *d = daemon)
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether it is a daemon.
    pub fn is_daemon(&self) -> bool {
        self.inner.daemon
    }

    fn state_error(&self, reason: &'static str) -> Error {
        Error::ProcessState { name: self.inner.name.clone(), reason }
    }

    /// Starts the child: forks and runs the closure there.
    ///
    /// # Errors
    /// [`Error::ProcessState`] when started twice ("cannot start a process twice"), when called in
    /// another process than the one that created it, after `close`, or in a daemon ("daemonic
    /// processes are not allowed to have children"); [`Error::Os`] if fork fails, or if
    /// `pidfd_open` fails after it (the child is then killed with SIGKILL and reaped first).
    pub fn start(&self) -> Result<()> {
        if self.inner.creator_pid != sys::proc::getpid() {
            return Err(self.state_error("can only start a process object created by current process"));
        }
        if child::current_is_daemon() {
            return Err(self.state_error("daemonic processes are not allowed to have children"));
        }
        let mut state = self.inner.state.lock();
        match &*state {
            State::Initial => {}
            State::Started { .. } => return Err(self.state_error("cannot start a process twice")),
            State::Closed => return Err(self.state_error("process object is closed")),
        }
        let Some(target) = self.inner.target.lock().take() else {
            return Err(self.state_error("cannot start a process twice"));
        };
        registry::reap_finished();
        child::install_panic_hook();
        let stdio = child::lock_and_flush_stdio();
        let info = child::ChildInfo {
            name: self.inner.name.clone(),
            daemon: self.inner.daemon,
            parent_pid: sys::proc::getpid(),
            identity: self.inner.identity.clone(),
        };
        // The closure owns the stdio locks: the child releases its copies before anything else,
        // the parent when fork_and_run drops the closure right after the fork.
        let pid = sys::proc::fork_and_run(move || {
            drop(stdio);
            child::run(info, target)
        })
        .map_err(|e| Error::os("fork", e))?;
        // The child cannot be reaped before we do, so its pid cannot be reused before this.
        let pidfd = match sys::proc::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                // Without a pidfd nobody could join, signal or reap the child: it would run
                // unreaped for ever. Kill it and reap it before reporting the error.
                kill_and_reap(pid);
                return Err(Error::os("pidfd_open", e));
            }
        };
        *state = State::Started { pid, pidfd, exitcode: None };
        drop(state);
        registry::register(self.clone());
        Ok(())
    }

    /// Polls the child without blocking; records and returns its exit code once it ended.
    fn poll(&self) -> Result<Option<i32>> {
        let mut state = self.inner.state.lock();
        match &mut *state {
            State::Initial => Err(self.state_error("can only join a started process")),
            State::Closed => Err(self.state_error("process object is closed")),
            State::Started { exitcode: Some(c), .. } => Ok(Some(*c)),
            State::Started { pid, exitcode, .. } => {
                let code = sys::proc::try_reap(*pid).map_err(|e| Error::os("waitpid", e))?;
                *exitcode = code;
                Ok(code)
            }
        }
    }

    fn check_creator(&self) -> Result<()> {
        if self.inner.creator_pid != sys::proc::getpid() {
            return Err(self.state_error("can only join a child process"));
        }
        Ok(())
    }

    /// Blocks until the child ends. Joining many times is fine.
    ///
    /// # Errors
    /// [`Error::ProcessState`] before `start` ("can only join a started process"), after `close`,
    /// or from another process than the creator.
    pub fn join(&self) -> Result<()> {
        self.join_until(None).map(drop)
    }

    /// Joins only if the child has already ended; returns whether it had.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn try_join(&self) -> Result<bool> {
        self.check_creator()?;
        Ok(self.poll()?.is_some())
    }

    /// Blocks until the child ends or `timeout` passes; returns whether it ended (Python's
    /// `join(timeout)` returns None; check `exitcode()` there).
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.join_until(Some(timeout))
    }

    fn join_until(&self, timeout: Option<Duration>) -> Result<bool> {
        self.check_creator()?;
        let deadline = deadline_after(timeout);
        loop {
            if self.poll()?.is_some() {
                return Ok(true);
            }
            let readable = {
                let state = self.inner.state.lock();
                let State::Started { pidfd, .. } = &*state else {
                    return Err(self.state_error("process object is closed"));
                };
                let fd = pidfd.try_clone().map_err(|e| Error::Os { op: "dup", source: e })?;
                drop(state);
                sys::proc::poll_readable(fd.as_fd(), deadline).map_err(|e| Error::os("poll", e))?
            };
            if !readable {
                return Ok(self.poll()?.is_some());
            }
        }
    }

    /// Whether the child is running: false before `start` and once it ended (which reaps it).
    pub fn is_alive(&self) -> bool {
        matches!(self.poll(), Ok(None))
    }

    /// The child's pid once started.
    #[doc(alias = "ident")]
    pub fn pid(&self) -> Option<i32> {
        match &*self.inner.state.lock() {
            State::Started { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    /// How the child ended: `None` while running (or not started), else as described on
    /// [`Process`].
    pub fn exitcode(&self) -> Option<i32> {
        self.poll().ok().flatten()
    }

    fn signal(&self, sig: sys::proc::Signal) -> Result<()> {
        let state = self.inner.state.lock();
        match &*state {
            State::Initial => Err(self.state_error("process not started")),
            State::Closed => Err(self.state_error("process object is closed")),
            State::Started { exitcode: Some(_), .. } => Ok(()),
            State::Started { pidfd, .. } => match sys::proc::pidfd_send_signal(pidfd.as_fd(), sig) {
                Ok(()) | Err(sys::Errno::ESRCH) => Ok(()),
                Err(e) => Err(Error::os("pidfd_send_signal", e)),
            },
        }
    }

    /// Sends SIGTERM (exit code -15 unless the child handles it). Descendants are not signalled.
    ///
    /// # Errors
    /// [`Error::ProcessState`] before `start` or after `close`.
    pub fn terminate(&self) -> Result<()> {
        self.signal(sys::proc::Signal::SIGTERM)
    }

    /// Sends SIGKILL (exit code -9).
    ///
    /// # Errors
    /// As [`terminate`](Self::terminate).
    pub fn kill(&self) -> Result<()> {
        self.signal(sys::proc::Signal::SIGKILL)
    }

    /// Releases the process object's resources (its pidfd). Idempotent.
    ///
    /// # Errors
    /// [`Error::ProcessState`] while the child runs ("Cannot close a process while it is still
    /// running. You should first call join() or terminate().").
    pub fn close(&self) -> Result<()> {
        let running = matches!(self.poll(), Ok(None));
        if running {
            return Err(self.state_error(
                "Cannot close a process while it is still running. You should first call join() or terminate().",
            ));
        }
        *self.inner.state.lock() = State::Closed;
        Ok(())
    }
}

/// Kills a child we could not take charge of and reaps it, waiting at most about 5 s (SIGKILL
/// ends a process within microseconds unless it is stuck in the kernel; after that its zombie is
/// left behind rather than hanging the caller). Its pid cannot be recycled meanwhile: it is our
/// unreaped child.
fn kill_and_reap(pid: i32) {
    if sys::proc::send_signal(pid, sys::proc::Signal::SIGKILL).is_err() {
        // ESRCH cannot happen for an unreaped child; anything else: it is gone already.
        let _ = sys::proc::try_reap(pid);
        return;
    }
    let mut nap = Duration::from_micros(100);
    let mut waited = Duration::ZERO;
    while waited < Duration::from_secs(5) {
        match sys::proc::try_reap(pid) {
            Ok(None) => {}
            // Reaped, or not ours to reap any more (ECHILD, e.g. SIGCHLD ignored).
            Ok(Some(_)) | Err(_) => return,
        }
        std::thread::sleep(nap);
        waited += nap;
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

/// The live children of this process; finished ones are reaped on the way (Python's
/// `active_children()`).
pub fn active_children() -> Vec<Process> {
    registry::reap_finished();
    registry::live()
}

/// The number of CPUs in the system (not the number this process may use), as Python.
pub fn cpu_count() -> usize {
    sys::proc::cpus_online()
}

/// What this process knows about itself: Python's `current_process()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentProcess {
    /// `"MainProcess"`, or the name of the `Process` this child runs.
    pub name: String,
    /// This process's pid.
    pub pid: i32,
    /// Whether this process is a daemon child.
    pub daemon: bool,
}

/// This process's name, pid and daemon flag.
pub fn current_process() -> CurrentProcess {
    child::current()
}

/// The process that started this one: Python's `parent_process()`.
#[derive(Clone, Debug)]
pub struct ParentProcess {
    /// The parent's pid.
    pub pid: i32,
    /// The parent's name.
    pub name: String,
    start_time: u64,
}

impl ParentProcess {
    /// Whether the parent is still running (pid and start time both match: a reused pid is not
    /// mistaken for it).
    pub fn is_alive(&self) -> bool {
        sys::proc::is_alive(self.pid, self.start_time)
    }
}

/// The parent of this process if it was started by [`Process::start`]; `None` in the main
/// process.
pub fn parent_process() -> Option<ParentProcess> {
    child::parent().map(|(pid, name, start_time)| ParentProcess { pid, name, start_time })
}
