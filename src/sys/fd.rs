//! File descriptors behind segments: memfd (anonymous), POSIX shm (named), sizing, reservation,
//! advisory locks (`flock`) and unlinking.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{Mode, fstat};

/// Where named segments live on Linux.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// An anonymous shared-memory file (close-on-exec) of `len` bytes, pages reserved.
pub(crate) fn memfd(debug_name: &str, len: usize) -> Result<OwnedFd, (&'static str, Errno)> {
    let cname = CString::new(debug_name).unwrap_or_else(|_| CString::from(c"shmproc"));
    let fd = memfd_create(cname.as_c_str(), MFdFlags::MFD_CLOEXEC).map_err(|e| ("memfd_create", e))?;
    size_and_reserve(fd.as_fd_borrow(), len)?;
    Ok(fd)
}

/// Creates `/name` exclusively with mode 0600.
pub(crate) fn shm_create_excl(name: &str) -> Result<OwnedFd, Errno> {
    shm_open(
        format!("/{name}").as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
}

/// Opens an existing `/name` read-write.
pub(crate) fn shm_open_existing(name: &str) -> Result<OwnedFd, Errno> {
    shm_open(format!("/{name}").as_str(), OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
}

/// Removes `/name`; mappings stay valid until unmapped.
pub(crate) fn shm_remove(name: &str) -> Result<(), Errno> {
    shm_unlink(format!("/{name}").as_str())
}

/// Sets the file length and reserves its pages now, so a full /dev/shm is an error here and never
/// a SIGBUS at first touch.
///
/// A request larger than the memory the system has available is refused with ENOSPC before
/// `posix_fallocate` runs: tmpfs only refuses early when its mount has a size limit, and a memfd
/// lives on the kernel's internal mount, which has none. There `fallocate` allocates page after
/// page until memory runs out (with no swap, until the OOM killer starts killing processes).
pub(crate) fn size_and_reserve(fd: BorrowedFd<'_>, len: usize) -> Result<(), (&'static str, Errno)> {
    if len >= RESERVE_CHECK_MIN && available_memory().is_some_and(|avail| len as u64 > avail) {
        return Err(("posix_fallocate", Errno::ENOSPC));
    }
    let len_off = libc::off_t::try_from(len).map_err(|_| ("ftruncate", Errno::EFBIG))?;
    nix::unistd::ftruncate(fd, len_off).map_err(|e| ("ftruncate", e))?;
    nix::fcntl::posix_fallocate(fd, 0, len_off).map_err(|e| ("posix_fallocate", e))?;
    Ok(())
}

/// Reservations from this size on are checked against [`available_memory`] first; smaller ones
/// skip the check (it reads /proc/meminfo) and rely on the kernel.
const RESERVE_CHECK_MIN: usize = 16 << 20;

/// Bytes the system can still give to shared memory: `MemAvailable + SwapFree` from
/// /proc/meminfo (the kernel's own estimate of what can be allocated without swapping storms
/// or OOM kills). `None` if it cannot be read.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |key: &str| -> Option<u64> {
        let line = info.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].trim().trim_end_matches("kB").trim().parse::<u64>().ok()
    };
    let kib = field("MemAvailable:")?.saturating_add(field("SwapFree:").unwrap_or(0));
    Some(kib.saturating_mul(1024))
}

/// The current length of the file behind `fd`.
pub(crate) fn file_len(fd: BorrowedFd<'_>) -> Result<usize, Errno> {
    let st = fstat(fd)?;
    Ok(usize::try_from(st.st_size).unwrap_or(0))
}

/// Seconds since the file's status last changed (0 if in the future).
pub(crate) fn age_secs(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let st = fstat(fd)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Ok(now.saturating_sub(u64::try_from(st.st_ctime).unwrap_or(0)))
}

/// The owner's uid of the file behind `fd`.
pub(crate) fn owner_uid(fd: BorrowedFd<'_>) -> Result<u32, Errno> {
    Ok(fstat(fd)?.st_uid)
}

/// The effective uid of this process.
pub(crate) fn my_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Kinds of advisory lock taken with `flock`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Flock {
    /// Held by every attacher for as long as it maps the segment.
    SharedBlocking,
    /// Taken by `sweep` to prove nobody holds a shared lock.
    ExclusiveNonBlocking,
}

/// Takes an advisory lock on the open file description behind `fd`.
pub(crate) fn flock(fd: BorrowedFd<'_>, how: Flock) -> Result<(), Errno> {
    let op = match how {
        Flock::SharedBlocking => libc::LOCK_SH,
        Flock::ExclusiveNonBlocking => libc::LOCK_EX | libc::LOCK_NB,
    };
    loop {
        // SAFETY: plain FFI call on a descriptor borrowed for the duration of the call.
        let r = unsafe { libc::flock(fd.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// Names in /dev/shm that start with `prefix`.
pub(crate) fn list_shm(prefix: &str) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let entry = entry?;
        if let Some(n) = entry.file_name().to_str()
            && n.starts_with(prefix)
        {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

/// Borrowing helper so callers can pass `&OwnedFd` where a `BorrowedFd` is wanted.
pub(crate) trait AsFdBorrow {
    fn as_fd_borrow(&self) -> BorrowedFd<'_>;
}

impl AsFdBorrow for OwnedFd {
    fn as_fd_borrow(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}
