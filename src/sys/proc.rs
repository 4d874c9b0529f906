//! Process control: fork, pidfd, waitpid, signals, the child prologue's OS calls, and process
//! identity (pid + start time, because pids are reused quickly).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::clock::Deadline;

/// Which side of a fork we are on.
pub(crate) enum Forked {
    /// In the parent; the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// Forks the calling process.
///
/// # Safety
/// In a multithreaded parent, the child may only call async-signal-safe functions until it
/// execs or exits, except for memory the caller knows no other thread was mutating at the
/// instant of the fork (see `Process` docs).
pub(crate) unsafe fn fork() -> Result<Forked, Errno> {
    // SAFETY: forwarded to the caller.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// `pidfd_open(pid, 0)`: a descriptor that becomes readable when the process exits.
pub(crate) fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    let fd = i32::try_from(r).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until `fd` is readable or the deadline passes; true when readable.
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, deadline: Deadline) -> Result<bool, Errno> {
    poll_any_readable(&[fd], deadline).map(|r| r.first().copied().unwrap_or(false))
}

/// Waits until any of `fds` is readable or the deadline passes; returns which are readable.
pub(crate) fn poll_any_readable(fds: &[BorrowedFd<'_>], deadline: Deadline) -> Result<Vec<bool>, Errno> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let rem = d.remaining();
                // Round up so we never wake before the deadline.
                i32::try_from(rem.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
            }
        };
        // SAFETY: `pfds` is a live, writable array of `pfds.len()` pollfd structs.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if r < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        if r == 0 && deadline.is_some_and(|d| !d.has_passed()) {
            continue;
        }
        return Ok(pfds.iter().map(|p| p.revents != 0).collect());
    }
}

/// How a child ended, as Python's `exitcode`: the exit status, or `-N` for signal N.
pub(crate) fn exitcode_of(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(-(sig as i32)),
        _ => None,
    }
}

/// Reaps `pid` if it has exited; `Ok(None)` while it runs.
pub(crate) fn try_reap(pid: i32) -> Result<Option<i32>, Errno> {
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(st) => {
                if let Some(code) = exitcode_of(st) {
                    return Ok(Some(code));
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sends `sig` to `pid`.
pub(crate) fn send_signal(pid: i32, sig: Signal) -> Result<(), Errno> {
    nix::sys::signal::kill(Pid::from_raw(pid), sig)
}

/// Sends `sig` through a pidfd (cannot hit a recycled pid).
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: Signal) -> Result<(), Errno> {
    // SAFETY: plain syscall; the descriptor is borrowed for the call, the siginfo pointer is null.
    let r = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig as libc::c_int, std::ptr::null::<u8>(), 0)
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// This process's pid.
pub(crate) fn getpid() -> i32 {
    nix::unistd::getpid().as_raw()
}

/// The parent's pid (1 or a subreaper once the parent died).
pub(crate) fn getppid() -> i32 {
    nix::unistd::getppid().as_raw()
}

/// The calling thread's kernel thread id.
pub(crate) fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// Asks the kernel to send SIGKILL to this process when its parent thread exits.
pub(crate) fn set_parent_death_kill() -> Result<(), Errno> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Replaces standard input with /dev/null (Python's child prologue).
pub(crate) fn stdin_from_devnull() -> Result<(), Errno> {
    let fd = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDONLY, nix::sys::stat::Mode::empty())?;
    // SAFETY: both descriptors are valid; dup2 atomically replaces fd 0.
    let r = unsafe { libc::dup2(fd.as_raw_fd(), 0) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Ends the process at once with `code`: no destructors, no atexit handlers, no stdio flush.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// Number of CPUs online in the system (Python's `cpu_count()`, not the affinity mask).
pub(crate) fn cpus_online() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(n)) if n > 0 => usize::try_from(n).unwrap_or(1),
        _ => 1,
    }
}

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`), or `None`
/// if the process does not exist. Together with the pid it names one process for ever.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ')' come fields 3.. ; starttime is field 22, i.e. index 19 here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` with start time `start` is still alive (not a zombie, not reused).
pub(crate) fn is_alive(pid: i32, start: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else { return false };
    let mut fields = stat[close + 1..].split_whitespace();
    let state = fields.next().unwrap_or("X");
    if state == "Z" || state == "X" || state == "x" {
        return false;
    }
    // `state` was field 3; starttime is field 22, 18 further on.
    fields.nth(18).and_then(|s| s.parse::<u64>().ok()) == Some(start)
}
