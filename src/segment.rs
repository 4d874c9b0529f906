//! Segments: one mapping of shared memory with a versioned header, anonymous (memfd, inherited by
//! forked children) or named (`shm_open` in /dev/shm, attached by any process of the same user).
//!
//! Creation protocol (named): `shm_open(O_CREAT|O_EXCL, 0600)`, `flock(LOCK_SH)`, size and
//! reserve every page (`posix_fallocate`: a full /dev/shm is an error now, never a SIGBUS later),
//! map, write the header, initialise the payload, then publish `STATE_READY` with `Release`.
//! Attach protocol: `shm_open`, `flock(LOCK_SH)`, wait (bounded) for the header, check magic,
//! layout version, kind, type fingerprint and sizes, wait (bounded) for `STATE_READY`.
//! Every mismatch is a typed [`Error`], never undefined behaviour.
//!
//! Every attacher holds `flock(LOCK_SH)` for as long as its mapping lives, so [`sweep`] can tell
//! a name that nobody uses any more (`LOCK_EX|LOCK_NB` succeeds) and unlink it.
#![allow(unsafe_code)]

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::layout::{self, HEADER_LEN, Kind, LAYOUT_VERSION, MAGIC, STATE_INIT, STATE_READY, SegmentHeader, ShmSafe};
use crate::sys::Errno;
use crate::sys::clock::MonoTime;
use crate::sys::fd::{self, AsFdBorrow, Flock};

/// How long `open` waits for a creator that is still initialising the segment.
pub(crate) const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest name accepted (NAME_MAX less room for the leading '/').
pub const MAX_NAME_LEN: usize = 250;

/// What a segment is for: written into the header by the creator, checked by every attacher.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    /// The object kind.
    pub kind: Kind,
    /// `layout::type_hash` of the element type.
    pub type_hash: u64,
    /// The element type's name, for error messages.
    pub type_name: &'static str,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Payload alignment in bytes (a power of two).
    pub payload_align: usize,
    /// Kind-specific parameter (array length, ring capacity, ...).
    pub param: u64,
}

impl Spec {
    /// A spec for a payload of type `P` holding elements of type `E`.
    pub(crate) fn of<P, E>(kind: Kind, param: u64, payload_len: usize) -> Spec {
        Spec {
            kind,
            type_hash: layout::type_hash::<E>(),
            type_name: std::any::type_name::<E>(),
            payload_len,
            payload_align: std::mem::align_of::<P>().max(std::mem::align_of::<E>()),
            param,
        }
    }

    fn payload_offset(&self) -> usize {
        layout::payload_offset(self.payload_align)
    }

    /// Header, padding and payload rounded up to whole pages; `None` if that overflows `usize`.
    fn total_len(&self) -> Option<usize> {
        self.payload_offset().checked_add(self.payload_len.max(1))?.checked_next_multiple_of(page_size())
    }
}

fn page_size() -> usize {
    4096
}

/// A mapped segment. Dropping it unmaps this process's view (and releases its `flock`); the
/// name, if any, lives on until [`Segment::unlink`] or [`sweep`].
pub(crate) struct Segment {
    map: MmapRaw,
    _fd: OwnedFd,
    name: Option<String>,
    /// The payload's offset and length, validated once at create/open and never re-read from
    /// the shared header (which another process could overwrite).
    payload_off: usize,
    payload_len: usize,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("name", &self.name).field("len", &self.map.len()).finish()
    }
}

/// Checks that `name` can be used for a named segment.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 250 bytes")
    } else if name.contains('/') {
        Some("it contains '/'")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not names")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName { name: name.to_owned(), reason }),
        None => Ok(()),
    }
}

fn map_errno(name: &str, op: &'static str, e: Errno) -> Error {
    match e {
        Errno::EEXIST => Error::AlreadyExists { name: name.to_owned() },
        Errno::ENOENT => Error::NotFound { name: name.to_owned() },
        Errno::EACCES | Errno::EPERM => Error::PermissionDenied { name: name.to_owned() },
        Errno::ENAMETOOLONG => Error::InvalidName { name: name.to_owned(), reason: "the OS says it is too long" },
        Errno::EINVAL if op == "shm_open" => Error::InvalidName { name: name.to_owned(), reason: "the OS refused it" },
        _ => Error::os(op, e),
    }
}

fn map_reserve_errno(what: &str, len: usize, (op, e): (&'static str, Errno)) -> Error {
    match e {
        Errno::ENOSPC | Errno::ENOMEM | Errno::EFBIG => Error::NoSpace { what: what.to_owned(), len },
        _ => Error::os(op, e),
    }
}

impl Segment {
    fn new(map: MmapRaw, fd: OwnedFd, name: Option<String>) -> Segment {
        Segment { map, _fd: fd, name, payload_off: HEADER_LEN, payload_len: 0 }
    }

    /// Creates a segment, anonymous (`name == None`) or named, runs `init` on the payload, and
    /// publishes it. A named segment is unlinked again if anything fails.
    ///
    /// `init` receives the payload pointer; it is the only code touching the memory until this
    /// returns, and the payload is zero-filled when it starts.
    pub(crate) fn create(name: Option<&str>, spec: Spec, init: impl FnOnce(*mut u8) -> Result<()>) -> Result<Segment> {
        let what = spec.kind.name();
        let total = spec.total_len().ok_or_else(|| {
            Error::InvalidArgument(format!("a {what} of {} bytes does not fit in memory", spec.payload_len))
        })?;
        let fd = match name {
            None => fd::memfd(&format!("shmproc-{what}"), total).map_err(|e| map_reserve_errno(what, total, e))?,
            Some(n) => {
                validate_name(n)?;
                let fd = fd::shm_create_excl(n).map_err(|e| map_errno(n, "shm_open", e))?;
                let r = Self::prepare_named(&fd, total).map_err(|e| match e {
                    (op @ "flock", e) => Error::os(op, e),
                    other => map_reserve_errno(what, total, other),
                });
                if let Err(e) = r {
                    let _ = fd::shm_remove(n);
                    return Err(e);
                }
                fd
            }
        };
        let built = Self::map_and_init(fd, name, spec, total, init);
        if built.is_err()
            && let Some(n) = name
        {
            let _ = fd::shm_remove(n);
        }
        built
    }

    fn prepare_named(fd: &OwnedFd, total: usize) -> std::result::Result<(), (&'static str, Errno)> {
        fd::flock(fd.as_fd_borrow(), Flock::SharedBlocking).map_err(|e| ("flock", e))?;
        fd::size_and_reserve(fd.as_fd_borrow(), total)
    }

    fn map_and_init(
        fd: OwnedFd,
        name: Option<&str>,
        spec: Spec,
        total: usize,
        init: impl FnOnce(*mut u8) -> Result<()>,
    ) -> Result<Segment> {
        let map = MmapOptions::new().len(total).map_raw(&fd).map_err(|e| Error::Os { op: "mmap", source: e })?;
        let mut seg = Segment::new(map, fd, name.map(str::to_owned));
        seg.payload_off = spec.payload_offset();
        seg.payload_len = spec.payload_len;
        let h = seg.header();
        h.state.store(STATE_INIT, Ordering::Relaxed);
        h.layout_version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.kind.store(spec.kind as u32, Ordering::Relaxed);
        h.type_hash.store(spec.type_hash, Ordering::Relaxed);
        h.total_len.store(total as u64, Ordering::Relaxed);
        h.payload_offset.store(spec.payload_offset() as u64, Ordering::Relaxed);
        h.payload_len.store(spec.payload_len as u64, Ordering::Relaxed);
        h.param.store(spec.param, Ordering::Relaxed);
        h.creator_pid.store(crate::sys::proc::getpid() as u32, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        init(seg.payload())?;
        seg.header().state.store(STATE_READY, Ordering::Release);
        Ok(seg)
    }

    /// Attaches to the named segment, checking it holds `spec.kind` of `spec.type_hash`. The
    /// payload length is checked against `spec.payload_len` unless it is `usize::MAX` (callers that
    /// derive it from `param` check it themselves).
    pub(crate) fn open(name: &str, spec: Spec, timeout: Duration) -> Result<Segment> {
        validate_name(name)?;
        let fd = fd::shm_open_existing(name).map_err(|e| map_errno(name, "shm_open", e))?;
        fd::flock(fd.as_fd_borrow(), Flock::SharedBlocking).map_err(|e| Error::os("flock", e))?;
        let deadline = MonoTime::after(timeout);
        let not_ready = || Error::NotReady { name: name.to_owned(), waited: timeout };
        let mut backoff = Duration::from_micros(50);
        // Wait until the creator has sized the file and written the magic.
        let seg = loop {
            let len = fd::file_len(fd.as_fd_borrow()).map_err(|e| Error::os("fstat", e))?;
            if len >= HEADER_LEN {
                let map = MmapOptions::new().len(len).map_raw(&fd).map_err(|e| Error::Os { op: "mmap", source: e })?;
                // SAFETY: the mapping is at least HEADER_LEN bytes and page aligned; the header is
                // all atomics, so reading it while the creator writes is not a data race.
                let magic = unsafe { &*map.as_ptr().cast::<SegmentHeader>() }.magic.load(Ordering::Acquire);
                if magic == MAGIC {
                    break Segment::new(map, fd, Some(name.to_owned()));
                }
                if magic != 0 {
                    return Err(Error::CorruptHeader {
                        name: name.to_owned(),
                        reason: "wrong magic: not a shmproc segment",
                    });
                }
            }
            if deadline.has_passed() {
                return Err(not_ready());
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(5));
        };
        let h = seg.header();
        let version = h.layout_version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(Error::WrongVersion { name: name.to_owned(), found: version, expected: LAYOUT_VERSION });
        }
        let kind = h.kind.load(Ordering::Relaxed);
        if kind != spec.kind as u32 {
            let found = Kind::from_raw(kind).map_or_else(|| format!("unknown kind {kind}"), |k| k.name().to_owned());
            return Err(Error::WrongKind { name: name.to_owned(), expected: spec.kind.name(), found });
        }
        if h.type_hash.load(Ordering::Relaxed) != spec.type_hash {
            return Err(Error::WrongType { name: name.to_owned(), expected: spec.type_name });
        }
        let total = h.total_len.load(Ordering::Relaxed) as usize;
        if total != seg.map.len() {
            return Err(Error::SizeMismatch { name: name.to_owned(), expected: total, found: seg.map.len() });
        }
        let off = h.payload_offset.load(Ordering::Relaxed) as usize;
        let plen = h.payload_len.load(Ordering::Relaxed) as usize;
        if off < HEADER_LEN
            || !off.is_multiple_of(spec.payload_align)
            || off.checked_add(plen).is_none_or(|end| end > total)
        {
            return Err(Error::CorruptHeader { name: name.to_owned(), reason: "payload outside the segment" });
        }
        if spec.payload_len != usize::MAX && plen != spec.payload_len {
            return Err(Error::SizeMismatch { name: name.to_owned(), expected: spec.payload_len, found: plen });
        }
        let mut backoff = Duration::from_micros(50);
        while !seg.header().is_ready() {
            if deadline.has_passed() {
                return Err(not_ready());
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(5));
        }
        let mut seg = seg;
        seg.payload_off = off;
        seg.payload_len = plen;
        Ok(seg)
    }

    /// The header at the base of the mapping.
    pub(crate) fn header(&self) -> &SegmentHeader {
        // SAFETY: every mapping is at least one page, page aligned, and starts with a
        // SegmentHeader made only of atomics, so a shared reference to it is sound even while
        // other processes update it.
        unsafe { &*self.map.as_ptr().cast::<SegmentHeader>() }
    }

    /// The start of the payload.
    pub(crate) fn payload(&self) -> *mut u8 {
        // `open` and `create` checked `off + payload_len <= len`, so this stays in the mapping.
        self.map.as_mut_ptr().wrapping_add(self.payload_off)
    }

    /// The payload as a shared `T`: the one place shared structs are borrowed from a segment.
    ///
    /// # Panics
    /// If the payload is smaller than a `T` or misaligned for it: the caller's `Spec` fixes both,
    /// so this is an invariant, not an input error.
    pub(crate) fn payload_ref<T: ShmSafe>(&self) -> &T {
        let p = self.payload();
        assert!(std::mem::size_of::<T>() <= self.payload_len, "payload smaller than its struct");
        assert!(p.cast::<T>().is_aligned(), "payload misaligned for its struct");
        // SAFETY: the payload lies inside the mapping `self` keeps alive, is large enough and
        // aligned for `T` (asserted above), starts zero-filled and was initialised by its creator
        // before publication; `T: ShmSafe` makes every such byte pattern valid and all of its
        // state atomic or in cells, so a shared reference may coexist with other processes' writes.
        unsafe { &*p.cast::<T>() }
    }

    /// The payload length in bytes (as validated when the segment was created or opened).
    pub(crate) fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// The kind-specific parameter.
    pub(crate) fn param(&self) -> u64 {
        self.header().param.load(Ordering::Relaxed)
    }

    /// The name, for named segments.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Removes the name from the system; every mapping stays valid until it is dropped.
    /// Anonymous segments have no name: this is a no-op for them.
    pub(crate) fn unlink(&self) -> Result<()> {
        match &self.name {
            None => Ok(()),
            Some(n) => fd::shm_remove(n).map_err(|e| map_errno(n, "shm_unlink", e)),
        }
    }
}

/// Unlinks every shmproc segment whose name starts with `prefix` and that no living process has
/// open; returns the names removed.
///
/// Every attacher holds a shared `flock` on its segment until it drops it (or dies), so a segment
/// on which an exclusive, non-blocking `flock` succeeds has no users. Segments still being
/// created (no header yet, younger than ten seconds) are left alone.
///
/// # Errors
/// [`Error::Os`] if /dev/shm cannot be listed. Names that vanish or cannot be opened meanwhile
/// are skipped.
///
/// # Example
/// ```
/// // Remove leftovers of earlier runs that crashed before unlinking their names.
/// let removed = shmproc::sweep("myapp-")?;
/// println!("removed {removed:?}");
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn sweep(prefix: &str) -> Result<Vec<String>> {
    let names = fd::list_shm(prefix).map_err(|e| Error::Os { op: "read_dir /dev/shm", source: e })?;
    let mut removed = Vec::new();
    for name in names {
        let Ok(fd) = fd::shm_open_existing(&name) else { continue };
        if fd::owner_uid(fd.as_fd_borrow()).ok() != Some(fd::my_uid()) {
            continue;
        }
        if fd::flock(fd.as_fd_borrow(), Flock::ExclusiveNonBlocking).is_err() {
            continue; // someone still holds it
        }
        let len = fd::file_len(fd.as_fd_borrow()).unwrap_or(0);
        let mut is_ours = false;
        let mut young = fd::age_secs(fd.as_fd_borrow()).unwrap_or(0) < 10;
        if len >= HEADER_LEN
            && let Ok(map) = MmapOptions::new().len(HEADER_LEN).map_raw_read_only(&fd)
        {
            // SAFETY: the mapping is HEADER_LEN bytes, page aligned, read through atomics only.
            let magic = unsafe { &*map.as_ptr().cast::<SegmentHeader>() }.magic.load(Ordering::Acquire);
            is_ours = magic == MAGIC;
            young = young && !is_ours;
        }
        if (is_ours || (len < HEADER_LEN && !young)) && fd::shm_remove(&name).is_ok() {
            removed.push(name);
        }
    }
    Ok(removed)
}
