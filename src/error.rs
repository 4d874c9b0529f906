//! Typed errors. Every failure a user can meet has its own variant that says what happened and
//! what to do; nothing is a bare `io::Error` without context.

use std::fmt;
use std::time::Duration;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in shmproc.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- names and segments -------------------------------------------------------------
    /// The name cannot be used for a shared-memory object.
    #[error("invalid shared-memory name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `create` of a name that already exists (Python's `FileExistsError`).
    #[error(
        "shared-memory name {name:?} already exists: open it instead, pick another name, or unlink/sweep the stale one"
    )]
    AlreadyExists {
        /// The name given.
        name: String,
    },
    /// `open` of a name that does not exist (Python's `FileNotFoundError`).
    #[error("no shared-memory object named {name:?}: create it first, or check the name")]
    NotFound {
        /// The name given.
        name: String,
    },
    /// The object exists but belongs to another user or its mode forbids access.
    #[error("permission denied for shared-memory object {name:?}: it belongs to another user or mode")]
    PermissionDenied {
        /// The name given.
        name: String,
    },
    /// There is not enough shared memory to reserve the segment (a full /dev/shm or memory limit).
    #[error("not enough shared memory for {len} bytes of {what}: free space in /dev/shm or ask for less")]
    NoSpace {
        /// What was being created.
        what: String,
        /// Bytes requested.
        len: usize,
    },
    /// The segment holds another kind of object than the one being opened.
    #[error("{name:?} holds a {found}, not a {expected}")]
    WrongKind {
        /// The name given.
        name: String,
        /// The kind the caller asked for.
        expected: &'static str,
        /// The kind the segment holds.
        found: String,
    },
    /// The segment holds the right kind of object but for another element type.
    #[error("{name:?} was created for another element type than {expected} (type fingerprint mismatch)")]
    WrongType {
        /// The name given.
        name: String,
        /// The type the caller asked for.
        expected: &'static str,
    },
    /// The segment was created by an incompatible version of shmproc.
    #[error(
        "{name:?} has layout version {found}, this shmproc uses {expected}: use the same shmproc version in every process"
    )]
    WrongVersion {
        /// The name given.
        name: String,
        /// Version found in the segment.
        found: u32,
        /// Version this build uses.
        expected: u32,
    },
    /// The segment's size does not match what its header or type requires.
    #[error("{name:?} has {found} bytes where {expected} were expected")]
    SizeMismatch {
        /// The name given.
        name: String,
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// The segment's header is not a shmproc header or is damaged.
    #[error("{name:?} is not a valid shmproc segment: {reason}")]
    CorruptHeader {
        /// The name given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The creator never finished initialising the segment (it may have died): try again, or
    /// `sweep` stale names.
    #[error("{name:?} was not ready after {waited:?}: its creator may have died mid-creation; retry or sweep() it")]
    NotReady {
        /// The name given.
        name: String,
        /// How long we waited.
        waited: Duration,
    },
    /// An operating-system call failed in a way no other variant describes.
    #[error("{op} failed: {source}")]
    Os {
        /// The call that failed.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    // ---- arguments ------------------------------------------------------------------------
    /// An index past the end (Python's `IndexError`).
    #[error("index {index} out of range for length {len}")]
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// The length.
        len: usize,
    },
    /// A slice of the wrong length (Python's "Can only assign sequence of same size").
    #[error("length mismatch: expected {expected}, got {found}")]
    LengthMismatch {
        /// The length required.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// An argument outside what the call accepts (Python's `ValueError`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    // ---- locks ----------------------------------------------------------------------------
    /// A holder of the lock died or panicked while holding it; the data may be inconsistent.
    /// Inspect it, then call `clear_poison()`.
    #[error(
        "lock poisoned: a previous holder died or panicked while holding it; check the data, then call clear_poison()"
    )]
    Poisoned,
    /// This thread already holds this non-reentrant lock; locking again would deadlock.
    #[error("this thread already holds the lock: locking it again would deadlock (use an RLock to re-enter)")]
    WouldDeadlock,
    /// Release by a thread that does not hold the lock (Python's RLock `AssertionError`).
    #[error("release of a lock not held by this thread: only the owner may release it")]
    NotOwner,
    /// Release of a lock nobody holds (Python's "released too many times").
    #[error("release of an unlocked lock: semaphore or lock released too many times")]
    NotLocked,
    /// `release()` of a lock this thread holds through a guard, not through `acquire()`:
    /// releasing it would let another thread in while the guard still hands out the data.
    #[error("release() of a lock held through a guard: drop the guard instead")]
    HeldByGuard,
    /// The reentrant lock's recursion counter is full.
    #[error("too many recursive acquisitions of an RLock")]
    TooManyRecursions,

    // ---- synchronisation ------------------------------------------------------------------
    /// `BoundedSemaphore::release` above its initial value (Python's `ValueError`).
    #[error("semaphore or lock released too many times")]
    ReleasedTooManyTimes,
    /// `Condition::wait`/`notify` without holding its lock (Python's `AssertionError`).
    #[error("the condition's lock must be held: acquire it before wait()/notify()")]
    LockNotHeld,
    /// The barrier is broken: it timed out, was aborted or reset, or a party's action failed
    /// (Python's `BrokenBarrierError`).
    #[error("broken barrier: it was aborted, reset, timed out, or its action failed")]
    BrokenBarrier,
    /// A wait ran out of time.
    #[error("timed out")]
    Timeout,

    // ---- processes ------------------------------------------------------------------------
    /// The process cannot do this in its current state (start twice, join before start, close
    /// while running, ...); the message says which (Python's `AssertionError`/`ValueError`).
    #[error("process {name:?}: {reason}")]
    ProcessState {
        /// The process name.
        name: String,
        /// What is wrong, in Python's words.
        reason: &'static str,
    },

    // ---- queues and pipes -----------------------------------------------------------------
    /// The queue or connection was closed.
    #[error("the queue or connection is closed")]
    Closed,
    /// `get` on an empty queue gave up (Python's `queue.Empty`).
    #[error("queue empty")]
    Empty,
    /// `put` on a full queue gave up (Python's `queue.Full`).
    #[error("queue full")]
    Full,
    /// A message larger than the ring can ever hold.
    #[error("message of {len} bytes can never fit: the largest is {max} bytes; create a larger queue")]
    MessageTooLarge {
        /// The message length.
        len: usize,
        /// The largest message the queue accepts.
        max: usize,
    },
    /// The peer closed its end or died and nothing is left to read (Python's `EOFError`).
    #[error("end of file: the peer closed the connection or died and no message is left")]
    Eof,
    /// A receive buffer too small for the message (Python's `BufferTooShort`); the message was
    /// consumed and is returned whole.
    #[error("buffer too short: the message has {} bytes", .0.len())]
    BufferTooShort(Vec<u8>),
    /// The connection end cannot be used in this direction (Python's "connection is read-only").
    #[error("connection is {0}")]
    WrongDirection(&'static str),
    /// `task_done` called more times than items were put (Python's `ValueError`).
    #[error("task_done() called too many times")]
    TaskDoneTooManyTimes,
    /// A message could not be encoded or decoded.
    #[error("message encoding failed: {0}")]
    Codec(String),
}

/// A put that did not happen, with the value given back (like std's `TrySendError`).
///
/// The error is [`Error::Full`] (no room in time), [`Error::Closed`], [`Error::MessageTooLarge`],
/// [`Error::Codec`] or another queue error; the value was not sent.
pub struct TryPutError<T> {
    error: Error,
    value: T,
}

impl<T> TryPutError<T> {
    pub(crate) fn new(error: Error, value: T) -> Self {
        TryPutError { error, value }
    }

    /// Why the put failed.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The value that was not sent.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The error and the value.
    pub fn into_parts(self) -> (Error, T) {
        (self.error, self.value)
    }

    /// Whether the queue was full (Python's `queue.Full`).
    pub fn is_full(&self) -> bool {
        matches!(self.error, Error::Full)
    }

    /// Whether the queue or connection was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.error, Error::Closed)
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryPutError").field("error", &self.error).finish_non_exhaustive()
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for TryPutError<T> {}

impl<T> From<TryPutError<T>> for Error {
    /// Drops the value and keeps what went wrong.
    fn from(e: TryPutError<T>) -> Error {
        e.error
    }
}

impl Error {
    /// An [`Error::Os`] from an errno.
    pub(crate) fn os(op: &'static str, errno: crate::sys::Errno) -> Error {
        Error::Os { op, source: std::io::Error::from_raw_os_error(errno as i32) }
    }
}

/// A lock attempt that did not produce a clean guard.
///
/// Shaped like std's `TryLockError`: a poisoned lock is still acquired and the guard is inside.
pub enum LockError<G> {
    /// Acquired, but a previous holder died or panicked while holding it. The guard is inside.
    Poisoned(PoisonError<G>),
    /// Not acquired: held by someone else (`try_lock`) or the timeout passed (`lock_timeout`).
    WouldBlock,
    /// Not acquired: this thread already holds this non-reentrant lock.
    WouldDeadlock,
    /// Not acquired: the reentrant lock's recursion counter is full.
    TooManyRecursions,
}

/// The result of a lock attempt.
pub type LockResult<G> = std::result::Result<G, LockError<G>>;

impl<G> LockError<G> {
    /// The guard of a poisoned acquisition; `None` when the lock was not acquired.
    pub fn into_poisoned_guard(self) -> Option<G> {
        match self {
            LockError::Poisoned(p) => Some(p.into_inner()),
            _ => None,
        }
    }

    /// The same error with the guard (if any) turned into another.
    pub(crate) fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            LockError::Poisoned(p) => LockError::Poisoned(PoisonError::new(f(p.into_inner()))),
            LockError::WouldBlock => LockError::WouldBlock,
            LockError::WouldDeadlock => LockError::WouldDeadlock,
            LockError::TooManyRecursions => LockError::TooManyRecursions,
        }
    }

    /// The error without the guard (dropping the guard releases the lock).
    pub fn without_guard(&self) -> Error {
        match self {
            LockError::Poisoned(_) => Error::Poisoned,
            LockError::WouldBlock => Error::Timeout,
            LockError::WouldDeadlock => Error::WouldDeadlock,
            LockError::TooManyRecursions => Error::TooManyRecursions,
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Poisoned(_) => f.write_str("Poisoned(..)"),
            LockError::WouldBlock => f.write_str("WouldBlock"),
            LockError::WouldDeadlock => f.write_str("WouldDeadlock"),
            LockError::TooManyRecursions => f.write_str("TooManyRecursions"),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::WouldBlock => f.write_str("lock is held elsewhere (would block / timed out)"),
            other => fmt::Display::fmt(&other.without_guard(), f),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

impl<G> From<LockError<G>> for Error {
    /// Drops the guard (releasing the lock) and keeps what went wrong.
    fn from(e: LockError<G>) -> Error {
        e.without_guard()
    }
}

/// A lock acquired after its previous holder died or panicked: the data may be half-updated.
///
/// Like `std::sync::PoisonError`: the guard is inside, take it with [`into_inner`](Self::into_inner).
pub struct PoisonError<G> {
    guard: G,
}

impl<G> PoisonError<G> {
    pub(crate) fn new(guard: G) -> Self {
        PoisonError { guard }
    }

    /// The guard: the lock is held.
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// A reference to the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// A mutable reference to the guard.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G> fmt::Debug for PoisonError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PoisonError { .. }")
    }
}

impl<G> fmt::Display for PoisonError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Error::Poisoned, f)
    }
}

impl<G> std::error::Error for PoisonError<G> {}
