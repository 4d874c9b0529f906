//! `Pipe` and `Connection`: Python's `multiprocessing.Pipe`, two rings in shared memory with
//! futex wake-ups, and `wait` over several connections and queues.
//!
//! Safe Rust on top of the queue module's ring ([`RawQueue`]) and pipe core ([`PipeCore`]).
//!
//! End of file: every end records the process that used it last and a closed flag. `recv` on an
//! empty ring whose writing end is closed, or whose last user died, returns [`Error::Eof`]
//! (Python's `EOFError`) instead of waiting for ever. A blocked `recv` is woken at once by the
//! peer's `close`; a peer's death is noticed within a few milliseconds (it is checked between
//! sleeps, through /proc).

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::queue::duplex::{PipeCore, PipeOf};
use crate::queue::queue::{DEFAULT_CAPACITY, Queue};
use crate::queue::{RawQueue, with_encoded};
use crate::sys::clock::{Deadline, MonoTime};

/// The first and the longest sleep between checks that the peer is still alive.
const FIRST_SLICE: Duration = Duration::from_micros(500);
const MAX_SLICE: Duration = Duration::from_millis(20);

/// Makes pipes: Python's `multiprocessing.Pipe(duplex)`.
///
/// # Example
/// ```
/// use shmproc::{Pipe, Process};
///
/// let (parent, child_end) = Pipe::new::<String>(true)?;
/// let p = Process::new(move || {
///     // The closure returns (), so it cannot `?`: an error ends the child with exit code 1.
///     let got = child_end.recv().expect("recv");
///     child_end.send(&format!("{got} pong")).expect("send");
/// });
/// p.start()?;
/// parent.send(&"ping".to_string())?;
/// assert_eq!(parent.recv()?, "ping pong");
/// p.join()?;
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug)]
pub struct Pipe;

impl Pipe {
    /// A pair of connected ends, each ring holding up to [`DEFAULT_CAPACITY`] bytes of messages.
    /// Duplex: both ends send and receive. Simplex: the first end only receives, the second only
    /// sends (as in Python).
    ///
    /// # Errors
    /// [`Error::NoSpace`], [`Error::Os`].
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T>(duplex: bool) -> Result<(Connection<T>, Connection<T>)> {
        Self::with_capacity(duplex, DEFAULT_CAPACITY)
    }

    /// Like [`new`](Self::new), with rings of `capacity` bytes.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_capacity<T>(duplex: bool, capacity: usize) -> Result<(Connection<T>, Connection<T>)> {
        let core = PipeCore::create::<PipeOf<T>>(None, duplex, capacity)?;
        Ok(Connection::pair(core, duplex))
    }

    /// A named pipe: another process gets both ends with [`open`](Self::open) and uses one.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::InvalidName`], [`Error::NoSpace`], ...
    pub fn create<T>(name: &str, duplex: bool, capacity: usize) -> Result<(Connection<T>, Connection<T>)> {
        let core = PipeCore::create::<PipeOf<T>>(Some(name), duplex, capacity)?;
        Ok(Connection::pair(core, duplex))
    }

    /// Attaches to the named pipe made by [`create`](Self::create) for the same `T`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::WrongKind`], [`Error::WrongType`], [`Error::NotReady`], ...
    pub fn open<T>(name: &str) -> Result<(Connection<T>, Connection<T>)> {
        let (core, duplex) = PipeCore::open::<PipeOf<T>>(name)?;
        Ok(Connection::pair(core, duplex))
    }
}

struct Inner {
    core: PipeCore,
    side: usize,
    readable: bool,
    writable: bool,
    /// This handle's own view of `close` (the shared flag is in the segment).
    closed: AtomicBool,
}

/// One end of a [`Pipe`]: Python's `multiprocessing.connection.Connection`.
///
/// Messages are `T` (postcard-encoded) or raw bytes; boundaries are kept. Cheap to clone (all
/// clones are the same end). One reader and one writer per direction is the intended use, as in
/// Python; several are safe here (the ring is MPMC), their messages interleave whole.
pub struct Connection<T> {
    inner: Arc<Inner>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Connection<T> {
    /// Another handle to the same end.
    fn clone(&self) -> Self {
        Connection { inner: self.inner.clone(), _t: PhantomData }
    }
}

impl<T> std::fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.inner.side)
            .field("readable", &self.inner.readable)
            .field("writable", &self.inner.writable)
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn deadline_in(timeout: Duration) -> Deadline {
    Some(MonoTime::after(timeout))
}

fn slice_until(deadline: Deadline, slice: Duration) -> Deadline {
    let s = MonoTime::after(slice);
    Some(deadline.map_or(s, |d| d.min(s)))
}

fn passed(deadline: Deadline) -> bool {
    deadline.is_some_and(|d| d.has_passed())
}

impl<T> Connection<T> {
    fn pair(core: PipeCore, duplex: bool) -> (Connection<T>, Connection<T>) {
        let mk = |side, readable, writable| Connection {
            inner: Arc::new(Inner { core: core.clone(), side, readable, writable, closed: AtomicBool::new(false) }),
            _t: PhantomData,
        };
        if duplex { (mk(0, true, true), mk(1, true, true)) } else { (mk(0, true, false), mk(1, false, true)) }
    }

    fn peer(&self) -> usize {
        1 - self.inner.side
    }

    fn rx(&self) -> &RawQueue {
        self.inner.core.ring(self.peer())
    }

    fn tx(&self) -> &RawQueue {
        self.inner.core.ring(self.inner.side)
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Relaxed) || self.inner.core.is_closed(self.inner.side) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn check_read(&self) -> Result<()> {
        self.check_open()?;
        if !self.inner.readable {
            return Err(Error::WrongDirection("write-only"));
        }
        self.inner.core.touch(self.inner.side);
        Ok(())
    }

    fn check_write(&self) -> Result<()> {
        self.check_open()?;
        if !self.inner.writable {
            return Err(Error::WrongDirection("read-only"));
        }
        self.inner.core.touch(self.inner.side);
        Ok(())
    }

    /// The name, for a named pipe.
    pub fn name(&self) -> Option<&str> {
        self.inner.core.segment().name()
    }

    /// Removes the name of a named pipe. A no-op for anonymous pipes.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it was already unlinked.
    pub fn unlink(&self) -> Result<()> {
        self.inner.core.segment().unlink()
    }

    /// Whether this end can receive.
    pub fn readable(&self) -> bool {
        self.inner.readable
    }

    /// Whether this end can send.
    pub fn writable(&self) -> bool {
        self.inner.writable
    }

    /// Whether this end was closed (by any process).
    #[doc(alias = "closed")]
    pub fn is_closed(&self) -> bool {
        self.check_open().is_err()
    }

    /// Closes this end for every process: its own sends and receives fail with
    /// [`Error::Closed`], and the peer's `recv` returns what is left, then [`Error::Eof`].
    /// Idempotent.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.core.close_end(self.inner.side);
    }

    // ---- sending ----------------------------------------------------------------------------

    fn send_raw(&self, buf: &[u8]) -> Result<()> {
        self.check_write()?;
        let tx = self.tx();
        let peer = self.peer();
        if self.inner.core.is_closed(peer) {
            return Err(Error::Closed);
        }
        let mut slice = FIRST_SLICE;
        loop {
            match tx.put_bytes(buf, true, slice_until(None, slice)) {
                Err(Error::Full) => {
                    // Full for a while: a reader that is gone will never make room.
                    if self.inner.core.is_gone(peer) {
                        return Err(Error::Closed);
                    }
                    self.check_open()?;
                    slice = (slice * 2).min(MAX_SLICE);
                }
                other => return other,
            }
        }
    }

    /// Sends one message of raw bytes (Python's `send_bytes`); waits while the ring is full.
    ///
    /// # Errors
    /// [`Error::Closed`] when this end or the peer is closed (or the peer died while the ring
    /// was full), [`Error::WrongDirection`] on a read-only end, [`Error::MessageTooLarge`].
    pub fn send_bytes(&self, buf: &[u8]) -> Result<()> {
        self.send_raw(buf)
    }

    // ---- receiving --------------------------------------------------------------------------

    /// Claims the next message, or reports EOF, waiting until `deadline` when `block`.
    fn recv_with<R>(
        &self,
        block: bool,
        deadline: Deadline,
        take: impl FnOnce(crate::queue::ClaimGuard<'_>) -> R,
    ) -> Result<R> {
        self.check_read()?;
        let rx = self.rx();
        let peer = self.peer();
        let mut slice = FIRST_SLICE;
        loop {
            match rx.claim(false, None) {
                Ok(g) => return Ok(take(g)),
                Err(Error::Empty | Error::Closed) => {}
                Err(e) => return Err(e),
            }
            if self.inner.core.is_closed(peer) || (!block || slice > FIRST_SLICE) && self.inner.core.is_gone(peer) {
                // The peer is gone: whatever it committed before is still ours to read.
                return match rx.claim(false, None) {
                    Ok(g) => Ok(take(g)),
                    Err(Error::Empty | Error::Closed) => Err(Error::Eof),
                    Err(e) => Err(e),
                };
            }
            if !block || passed(deadline) {
                return Err(Error::Empty);
            }
            match rx.claim(true, slice_until(deadline, slice)) {
                Ok(g) => return Ok(take(g)),
                Err(Error::Empty | Error::Closed) => {}
                Err(e) => return Err(e),
            }
            self.check_open()?;
            slice = (slice * 2).min(MAX_SLICE);
        }
    }

    /// Receives one message as bytes (Python's `recv_bytes`), waiting for one.
    ///
    /// # Errors
    /// [`Error::Eof`] when nothing is left and the peer closed or died, [`Error::Closed`] on a
    /// closed end, [`Error::WrongDirection`] on a write-only end.
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.recv_with(true, None, |g| g.to_vec())
    }

    /// [`recv_bytes`](Self::recv_bytes) if a message is there now.
    ///
    /// # Errors
    /// [`Error::Empty`] when none is, plus those of [`recv_bytes`](Self::recv_bytes).
    pub fn try_recv_bytes(&self) -> Result<Vec<u8>> {
        self.recv_with(false, None, |g| g.to_vec())
    }

    /// [`recv_bytes`](Self::recv_bytes), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Empty`] after the timeout, plus those of [`recv_bytes`](Self::recv_bytes).
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_with(true, deadline_in(timeout), |g| g.to_vec())
    }

    /// Receives one message into `buf` (Python's `recv_bytes_into`) and returns its length.
    ///
    /// # Errors
    /// [`Error::BufferTooShort`] with the whole message when it does not fit (it is consumed),
    /// plus those of [`recv_bytes`](Self::recv_bytes).
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into_until(buf, true, None)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Empty`] after the timeout, plus those of [`recv_bytes_into`](Self::recv_bytes_into).
    pub fn recv_bytes_into_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_into_until(buf, true, deadline_in(timeout))
    }

    fn recv_into_until(&self, buf: &mut [u8], block: bool, deadline: Deadline) -> Result<usize> {
        self.recv_with(block, deadline, |g| {
            if g.len() <= buf.len() {
                g.copy_to(buf);
                Ok(g.len())
            } else {
                Err(Error::BufferTooShort(g.to_vec()))
            }
        })?
    }

    /// Whether a message (or EOF) is ready to receive, waiting up to `timeout` (`None`: for
    /// ever; `Some(Duration::ZERO)`: do not wait). Does not consume anything.
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed end, [`Error::WrongDirection`] on a write-only end.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        self.check_read()?;
        let deadline = timeout.map(MonoTime::after);
        let rx = self.rx();
        let peer = self.peer();
        let mut slice = FIRST_SLICE;
        loop {
            if rx.is_ready() || self.inner.core.is_closed(peer) {
                return Ok(true);
            }
            if slice > FIRST_SLICE && self.inner.core.is_gone(peer) {
                return Ok(true);
            }
            if timeout == Some(Duration::ZERO) {
                return Ok(self.inner.core.is_gone(peer));
            }
            if passed(deadline) {
                return Ok(false);
            }
            let d = slice_until(deadline, slice);
            rx.not_empty().wait_until(d, || (rx.is_ready() || self.inner.core.is_closed(peer)).then_some(()));
            self.check_open()?;
            slice = (slice * 2).min(MAX_SLICE);
        }
    }
}

impl<T: Serialize + DeserializeOwned> Connection<T> {
    /// Sends one value (Python's `send`); waits while the ring is full.
    ///
    /// # Errors
    /// [`Error::Codec`] when it cannot be encoded, plus those of
    /// [`send_bytes`](Self::send_bytes).
    pub fn send(&self, value: &T) -> Result<()> {
        with_encoded(value, |bytes| self.send_raw(bytes))
    }

    fn recv_value(&self, block: bool, deadline: Deadline) -> Result<T> {
        self.recv_with(block, deadline, |g| g.decode())?
    }

    /// Receives one value (Python's `recv`), waiting for one.
    ///
    /// # Errors
    /// [`Error::Eof`] when nothing is left and the peer closed or died, [`Error::Codec`] when
    /// the message is not a `T`, [`Error::Closed`], [`Error::WrongDirection`].
    pub fn recv(&self) -> Result<T> {
        self.recv_value(true, None)
    }

    /// [`recv`](Self::recv) if a message is there now.
    ///
    /// # Errors
    /// [`Error::Empty`] when none is, plus those of [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<T> {
        self.recv_value(false, None)
    }

    /// [`recv`](Self::recv), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Empty`] after the timeout, plus those of [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        self.recv_value(true, deadline_in(timeout))
    }
}

/// Something [`wait`] can wait on: a [`Connection`] (readable: a message or EOF) or a [`Queue`]
/// (a message or closed).
pub trait Waitable {
    /// Whether it is ready now, checking cheap state only.
    fn is_ready(&self) -> bool;

    /// Whether it is ready now, also checking slow state (a dead peer).
    #[doc(hidden)]
    fn is_ready_slow(&self) -> bool {
        self.is_ready()
    }

    /// The ring whose wake-ups signal readiness.
    #[doc(hidden)]
    fn wake_source(&self) -> WakeSource<'_>;
}

/// Where a [`Waitable`] is woken (opaque).
#[doc(hidden)]
pub struct WakeSource<'a>(&'a RawQueue);

impl<T> Waitable for Connection<T> {
    fn is_ready(&self) -> bool {
        self.inner.readable && (self.rx().is_ready() || self.inner.core.is_closed(self.peer()) || self.is_closed())
    }

    fn is_ready_slow(&self) -> bool {
        self.is_ready() || (self.inner.readable && self.inner.core.is_gone(self.peer()))
    }

    fn wake_source(&self) -> WakeSource<'_> {
        WakeSource(self.rx())
    }
}

impl<T> Waitable for Queue<T> {
    fn is_ready(&self) -> bool {
        self.core.raw.is_ready() || self.core.raw.is_closed()
    }

    fn wake_source(&self) -> WakeSource<'_> {
        WakeSource(&self.core.raw)
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`: for ever);
/// returns the indices of the ready ones (empty on timeout). Python's
/// `multiprocessing.connection.wait`.
///
/// Sleeps on the first object's futex in short slices and re-checks all of them between slices,
/// so an object other than the first is noticed within a slice (at most 2 ms), the first at once.
///
/// # Example
/// ```
/// use shmproc::{Pipe, Queue, Waitable, wait};
/// use std::time::Duration;
///
/// let (a, b) = Pipe::new::<u8>(true)?;
/// let q = Queue::<u8>::new()?;
/// q.put(1)?;
/// let ready = wait(&[&a as &dyn Waitable, &q], Some(Duration::from_millis(10)));
/// assert_eq!(ready, vec![1]);
/// # drop(b);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Vec<usize> {
    let deadline = timeout.map(MonoTime::after);
    let mut slice = Duration::from_micros(50);
    let mut round = 0u32;
    loop {
        let ready: Vec<usize> = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| if round % 8 == 7 { o.is_ready_slow() } else { o.is_ready() })
            .map(|(i, _)| i)
            .collect();
        if !ready.is_empty() || passed(deadline) || objects.is_empty() && timeout.is_some() {
            return ready;
        }
        if round < 16 {
            std::hint::spin_loop();
        } else if let Some(first) = objects.first() {
            let src = first.wake_source();
            let d = slice_until(deadline, slice);
            src.0.not_empty().wait_until(d, || objects.iter().any(|o| o.is_ready()).then_some(()));
            slice = (slice * 2).min(Duration::from_millis(2));
        } else {
            std::thread::sleep(slice_until(deadline, slice).map_or(slice, |d| d.remaining()));
        }
        round = round.wrapping_add(1);
    }
}
