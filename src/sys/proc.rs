//! Process control: fork, pidfd, waitpid, signals, the child prologue's OS calls, and process
//! identity (pid + start time, because pids are reused quickly).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
pub(crate) use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::clock::Deadline;

/// Forks; in the child runs `child`, which should end the process itself (if it returns, the
/// child exits with status 0 at once).
/// Returns the child's pid in the parent.
///
/// In a multithreaded parent the child holds a copy of every lock other threads held at the
/// instant of the fork; `child` must touch only what it owns (documented on `Process`).
pub(crate) fn fork_and_run(child: impl FnOnce()) -> Result<i32, Errno> {
    watch_forks();
    // SAFETY: the child branch runs `child`, which never returns into the parent's code and ends
    // with `_exit`; the parent branch only reads the pid. What the child may touch in a
    // multithreaded parent is the documented contract of `Process::start`.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(child.as_raw()),
        nix::unistd::ForkResult::Child => {
            // The atfork handler registered above has bumped the fork generation already.
            child();
            exit_now(0)
        }
    }
}

/// Bumped in every child right after `fork` (ours, and any other glibc fork once
/// [`watch_forks`] ran): per-process caches compare it instead of calling `getpid()`.
static FORK_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The number of forks between the original process and this one: a cache keyed by it is
/// invalidated in every child without a syscall on the hot path.
#[inline]
pub(crate) fn fork_generation() -> u64 {
    FORK_GENERATION.load(std::sync::atomic::Ordering::Relaxed)
}

extern "C" fn bump_fork_generation() {
    FORK_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Registers (once) a `pthread_atfork` child handler that bumps the fork generation, so caches
/// stay right even in children forked by other code than `Process`.
///
/// An atomic flag, not a `Once`: a `Once` caught mid-call by another thread's fork would stay
/// "running" for ever in the child.
pub(crate) fn watch_forks() {
    static REGISTERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !REGISTERED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: registers a handler that only performs an atomic increment, which is
        // async-signal-safe and valid in a freshly forked child.
        unsafe { libc::pthread_atfork(None, None, Some(bump_fork_generation)) };
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

/// Writes `bytes` to fd 2 with plain `write(2)` calls: no Rust lock, no buffer, safe in a child
/// forked from a multithreaded parent. Errors are ignored (there is nowhere to report them).
pub(crate) fn write_stderr_unlocked(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice of `bytes.len()` readable bytes for the whole call.
        let r = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(r) {
            Ok(n) if n > 0 => bytes = &bytes[n.min(bytes.len())..],
            _ if r < 0 && Errno::last() == Errno::EINTR => {}
            _ => return,
        }
    }
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

/// What `/proc/<id>/stat` says about a process or thread id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProcStat {
    /// No such id (the file does not exist while /proc does).
    Missing,
    /// Exited, not yet reaped.
    Zombie,
    /// Running or sleeping; its start time in clock ticks since boot, if it could be parsed.
    Running(Option<u64>),
    /// /proc could not answer (not mounted, out of file descriptors, ...): assume it lives.
    Unknown,
}

/// Reads `/proc/<id>/stat` (any thread id works there, not only process ids) as bytes: the
/// command name may hold any bytes, even half a UTF-8 character cut at 15 bytes.
fn proc_stat(id: u32) -> ProcStat {
    let stat = match std::fs::read(format!("/proc/{id}/stat")) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::path::Path::new("/proc/self/stat").exists() => {
            return ProcStat::Missing;
        }
        Err(_) => return ProcStat::Unknown,
    };
    // The command name (field 2) is in parentheses and may contain anything: split after the
    // last ')'. Fields 3.. follow: the state, then starttime is field 22 (18 after the state).
    let Some(close) = stat.iter().rposition(|&b| b == b')') else { return ProcStat::Running(None) };
    let mut fields = stat[close + 1..].split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
    match fields.next() {
        Some(b"Z" | b"X" | b"x") => ProcStat::Zombie,
        _ => ProcStat::Running(fields.nth(18).and_then(|f| std::str::from_utf8(f).ok()).and_then(|f| f.parse().ok())),
    }
}

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`), or `None`
/// if the process does not exist or /proc cannot tell. With the pid it names one process for ever.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    match proc_stat(u32::try_from(pid).ok()?) {
        ProcStat::Running(start) => start,
        _ => None,
    }
}

/// Whether some live (not zombie) process or thread has id `pid`; presumed alive when /proc
/// cannot answer.
pub(crate) fn id_exists(pid: i32) -> bool {
    let Ok(id) = u32::try_from(pid) else { return false };
    !matches!(proc_stat(id), ProcStat::Missing | ProcStat::Zombie)
}

/// Whether the process `pid` with start time `start` is still alive (not a zombie, not reused).
/// When /proc cannot answer it is presumed alive: a live peer must never be declared dead.
pub(crate) fn is_alive(pid: i32, start: u64) -> bool {
    let Ok(id) = u32::try_from(pid) else { return false };
    match proc_stat(id) {
        ProcStat::Missing | ProcStat::Zombie => false,
        ProcStat::Running(Some(s)) => s == start,
        ProcStat::Running(None) | ProcStat::Unknown => true,
    }
}

static ID_GEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static ID_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static ID_START: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// This process's identity: (pid, start time in clock ticks since boot). Cached, and refreshed
/// in forked children via the fork generation: after the first call, three atomic loads.
pub(crate) fn self_identity() -> (i32, u64) {
    use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
    let gen_now = fork_generation() + 1;
    if ID_GEN.load(Acquire) == gen_now {
        return (ID_PID.load(Relaxed) as i32, ID_START.load(Relaxed));
    }
    watch_forks();
    let pid = getpid();
    let start = start_time(pid).unwrap_or(0);
    ID_PID.store(pid as u32, Relaxed);
    ID_START.store(start, Relaxed);
    ID_GEN.store(fork_generation() + 1, Release);
    (pid, start)
}

/// A per-process slot that a forked child can replace without taking any lock (a lock held by
/// another parent thread at the instant of the fork would stay held in the child for ever).
/// Values are leaked: each process installs a handful at most.
pub(crate) struct ProcessSlot<T: 'static> {
    ptr: std::sync::atomic::AtomicPtr<T>,
}

impl<T: Sync + 'static> ProcessSlot<T> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        ProcessSlot { ptr: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()) }
    }

    /// The installed value, if any.
    pub(crate) fn get(&self) -> Option<&'static T> {
        let p = self.ptr.load(std::sync::atomic::Ordering::Acquire);
        // SAFETY: every non-null pointer stored here came from `Box::leak` in `set` and is never
        // freed, so it is valid for `'static`; only shared references are handed out.
        unsafe { p.as_ref() }
    }

    /// Installs `value` (the previous one, if any, stays leaked: references to it stay valid).
    pub(crate) fn set(&self, value: T) -> &'static T {
        let leaked: &'static mut T = Box::leak(Box::new(value));
        self.ptr.store(std::ptr::from_mut(leaked), std::sync::atomic::Ordering::Release);
        leaked
    }
}

/// Runs `f` when the process exits normally (`exit`, or return from `main`), not in `_exit`.
pub(crate) fn at_exit(f: fn()) {
    static HOOK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();
    extern "C" fn trampoline() {
        if let Some(f) = HOOK.get() {
            f();
        }
    }
    if HOOK.set(f).is_ok() {
        // SAFETY: registers a plain extern "C" function with no arguments; it stays valid for
        // the life of the program.
        unsafe { libc::atexit(trampoline) };
    }
}

/// Kills the calling process with SIGKILL at once (test-only kill points use it).
#[cfg(feature = "kill-points")]
pub(crate) fn kill_self() -> ! {
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGKILL);
    // SIGKILL sent to ourselves is delivered before kill() returns; never go on regardless.
    exit_now(137)
}

/// Bits of a thread start time kept in a packed [`ThreadIdentity`] (clock ticks since boot: at
/// 100 Hz, 2^42 ticks are over a thousand years).
pub(crate) const START_BITS: u32 = 42;
const START_MASK: u64 = (1 << START_BITS) - 1;

/// The calling thread, as another process can check it: its kernel thread id, and that id packed
/// with the thread's start time so a recycled id is not mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThreadIdentity {
    /// The kernel thread id (the pid for a process's main thread).
    pub tid: u32,
    /// `tid << START_BITS | start_ticks`.
    pub packed: u64,
}

/// Packs a thread id and start time.
pub(crate) fn pack_thread(tid: u32, start: u64) -> u64 {
    (u64::from(tid) << START_BITS) | (start & START_MASK)
}

/// The thread id inside a packed identity.
pub(crate) fn packed_tid(packed: u64) -> u32 {
    (packed >> START_BITS) as u32
}

thread_local! {
    /// (fork generation + 1, tid, packed) of this thread; 0 until first use.
    static THREAD_ME: std::cell::Cell<(u64, u32, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

/// The calling thread's identity. After the first call on a thread: a thread-local read and a
/// fork-generation check, no syscall (a forked child re-reads it once).
#[inline]
pub(crate) fn thread_identity() -> ThreadIdentity {
    let generation = fork_generation() + 1;
    let (g, tid, packed) = THREAD_ME.get();
    if g == generation {
        return ThreadIdentity { tid, packed };
    }
    thread_identity_slow()
}

#[cold]
fn thread_identity_slow() -> ThreadIdentity {
    watch_forks();
    let tid = gettid() as u32;
    let start = match thread_status(tid) {
        ThreadStatus::Alive(Some(start)) => start,
        _ => 0,
    };
    let me = ThreadIdentity { tid, packed: pack_thread(tid, start) };
    THREAD_ME.set((fork_generation() + 1, me.tid, me.packed));
    me
}

/// What `/proc` says about a thread id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ThreadStatus {
    /// It runs (or sleeps); its start time if `/proc` told it.
    Alive(Option<u64>),
    /// It exited (gone, or a zombie waiting to be reaped).
    Dead,
}

/// Whether thread `tid` lives, and since when. Only a missing `/proc/<tid>` or a zombie counts
/// as dead; when /proc cannot answer the thread is presumed alive (falling back to
/// `kill(tid, 0)` when /proc is not mounted at all).
pub(crate) fn thread_status(tid: u32) -> ThreadStatus {
    if tid == 0 {
        return ThreadStatus::Dead;
    }
    match proc_stat(tid) {
        ProcStat::Missing | ProcStat::Zombie => ThreadStatus::Dead,
        ProcStat::Running(start) => ThreadStatus::Alive(start),
        ProcStat::Unknown if std::path::Path::new("/proc/self").exists() => ThreadStatus::Alive(None),
        ProcStat::Unknown => match nix::sys::signal::kill(nix::unistd::Pid::from_raw(tid as i32), None) {
            Err(Errno::ESRCH) => ThreadStatus::Dead,
            _ => ThreadStatus::Alive(None),
        },
    }
}

/// Whether the thread that published `packed` (or, if `packed` names another thread, any thread
/// with id `tid`) has died. A live thread with the same id but another start time is a recycled
/// id: the owner died.
pub(crate) fn owner_is_dead(tid: u32, packed: u64) -> bool {
    match thread_status(tid) {
        ThreadStatus::Dead => true,
        ThreadStatus::Alive(start) => {
            let known = packed_tid(packed) == tid && packed & START_MASK != 0;
            known && start.is_some_and(|s| (s & START_MASK) != (packed & START_MASK))
        }
    }
}
