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
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::queue::duplex::{PipeCore, PipeOf};
use crate::queue::queue::{DEFAULT_CAPACITY, Queue};
use crate::queue::{RawQueue, with_encoded};
use crate::sync::shim::heavy_barrier;
use crate::sys::clock::{Deadline, MonoTime, deadline_in, deadline_passed, slice_deadline};
use crate::sys::futex::{self, WAITV_MAX};

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
/// clones are the same end). One process per end at a time is the supported use, as in Python:
/// the peer's liveness (for EOF) is that of the process that last used the other end, so two
/// processes writing one end may see a false EOF at the reader when one of them exits.
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

    /// Sends one message, waiting for room until `deadline` when `block`.
    fn send_raw(&self, buf: &[u8], block: bool, deadline: Deadline) -> Result<()> {
        self.check_write()?;
        let tx = self.tx();
        let peer = self.peer();
        if self.inner.core.is_closed(peer) {
            return Err(Error::Closed);
        }
        // First without a deadline (no clock read when there is room), then in slices.
        match tx.put_bytes(buf, false, None) {
            Err(Error::Full) => {}
            other => return other,
        }
        if !block {
            return Err(Error::Full);
        }
        let mut slice = FIRST_SLICE;
        loop {
            match tx.put_bytes(buf, true, slice_deadline(deadline, slice)) {
                Err(Error::Full) => {
                    // Full for a while: a reader that is gone will never make room.
                    if self.inner.core.is_gone(peer) {
                        return Err(Error::Closed);
                    }
                    self.check_open()?;
                    if deadline_passed(deadline) {
                        return Err(Error::Full);
                    }
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
        self.send_raw(buf, true, None)
    }

    /// [`send_bytes`](Self::send_bytes) if the ring has room now.
    ///
    /// # Errors
    /// [`Error::Full`] when it has not, plus those of [`send_bytes`](Self::send_bytes).
    pub fn try_send_bytes(&self, buf: &[u8]) -> Result<()> {
        self.send_raw(buf, false, None)
    }

    /// [`send_bytes`](Self::send_bytes), waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Full`] after the timeout, plus those of [`send_bytes`](Self::send_bytes).
    pub fn send_bytes_timeout(&self, buf: &[u8], timeout: Duration) -> Result<()> {
        self.send_raw(buf, true, deadline_in(timeout))
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
            if !block || deadline_passed(deadline) {
                return Err(Error::Empty);
            }
            match rx.claim(true, slice_deadline(deadline, slice)) {
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

    /// [`recv_bytes_into`](Self::recv_bytes_into) if a message is there now.
    ///
    /// # Errors
    /// [`Error::Empty`] when none is, plus those of [`recv_bytes_into`](Self::recv_bytes_into).
    pub fn try_recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into_until(buf, false, None)
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
            if deadline_passed(deadline) {
                return Ok(false);
            }
            let d = slice_deadline(deadline, slice);
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
        with_encoded(value, |bytes| self.send_raw(bytes, true, None))
    }

    /// [`send`](Self::send) if the ring has room now.
    ///
    /// # Errors
    /// [`Error::Full`] when it has not, plus those of [`send`](Self::send).
    pub fn try_send(&self, value: &T) -> Result<()> {
        with_encoded(value, |bytes| self.send_raw(bytes, false, None))
    }

    /// [`send`](Self::send), waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Full`] after the timeout, plus those of [`send`](Self::send).
    pub fn send_timeout(&self, value: &T, timeout: Duration) -> Result<()> {
        with_encoded(value, |bytes| self.send_raw(bytes, true, deadline_in(timeout)))
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
pub struct WakeSource<'a> {
    ring: &'a RawQueue,
    /// It may also become ready with no wake-up at all: a peer that dies notifies nobody.
    silent: bool,
}

impl<T> Waitable for Connection<T> {
    fn is_ready(&self) -> bool {
        self.inner.readable && (self.rx().is_ready() || self.inner.core.is_closed(self.peer()) || self.is_closed())
    }

    fn is_ready_slow(&self) -> bool {
        self.is_ready() || (self.inner.readable && self.inner.core.is_gone(self.peer()))
    }

    fn wake_source(&self) -> WakeSource<'_> {
        WakeSource { ring: self.rx(), silent: self.inner.readable }
    }
}

impl<T> Waitable for Queue<T> {
    fn is_ready(&self) -> bool {
        self.core.raw.is_ready() || self.core.raw.is_closed()
    }

    fn is_ready_slow(&self) -> bool {
        self.is_ready() || self.core.raw.is_ready_skipping_dead()
    }

    fn wake_source(&self) -> WakeSource<'_> {
        // Silent too: a producer killed between its reservation and its commit holds up every
        // message behind it (until someone skips its cell), and one killed between its commit
        // and its notification announces nothing.
        WakeSource { ring: &self.core.raw, silent: true }
    }
}

/// How many rounds [`wait`] re-checks its objects, spinning, before it sleeps.
const WAIT_SPINS: u32 = 16;
/// The longest sleep of [`wait`] between checks that the peers of its connections are alive.
const DEATH_SLICE: Duration = Duration::from_millis(100);
/// The longest sleep of [`wait`] between checks of the objects it does not sleep on (past the
/// first [`WAITV_MAX`], or all but the first when `futex_waitv` is missing).
const POLL_SLICE: Duration = Duration::from_millis(2);

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`: for ever);
/// returns the indices of the ready ones (empty on timeout). Python's
/// `multiprocessing.connection.wait`.
///
/// Spins briefly, then sleeps on all the objects at once (Linux `futex_waitv`), so whichever
/// becomes ready wakes it at once. Exceptions, each noticed after at most a short sleep:
/// - a connection whose peer dies without closing it (a death wakes nobody): within 100 ms;
/// - objects past the first 128 (the kernel's limit for one sleep): within 2 ms;
/// - on kernels before 5.16, which lack `futex_waitv`, every object but the first: within 2 ms.
///
/// With no objects it sleeps until the timeout (for ever with `None`), as Python's does.
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
    for _ in 0..WAIT_SPINS {
        let ready = ready_ones(objects, |o| o.is_ready());
        if !ready.is_empty() {
            return ready;
        }
        if deadline_passed(deadline) {
            return ready_ones(objects, |o| o.is_ready_slow());
        }
        std::hint::spin_loop();
    }
    if objects.is_empty() {
        while !deadline_passed(deadline) {
            std::thread::sleep(deadline.map_or(DEATH_SLICE, |d| d.remaining()));
        }
        return Vec::new();
    }
    // A peer that dies without closing its end wakes nobody, and the objects past the first
    // WAITV_MAX are not slept on: sleep in slices and look at them between slices. The death
    // slices start short (a wait on a peer just killed) and double up to DEATH_SLICE: each costs
    // a membarrier and a look at /proc per connection, negligible at that rate.
    let silent = objects.iter().any(|o| o.wake_source().silent);
    let mut death_slice = FIRST_SLICE;
    let mut words = Vec::with_capacity(objects.len().min(WAITV_MAX));
    loop {
        let ready = ready_ones(objects, |o| o.is_ready_slow());
        if !ready.is_empty() || deadline_passed(deadline) {
            return ready;
        }
        let mut until = deadline;
        if silent {
            until = slice_deadline(until, death_slice);
            death_slice = (death_slice * 2).min(DEATH_SLICE);
        }
        if objects.len() > WAITV_MAX {
            until = slice_deadline(until, POLL_SLICE);
        }
        if let Some(ready) = sleep_on_all(objects, &mut words, until) {
            return ready;
        }
    }
}

/// The indices of the objects for which `is_ready` holds.
fn ready_ones(objects: &[&dyn Waitable], is_ready: impl Fn(&dyn Waitable) -> bool) -> Vec<usize> {
    objects.iter().enumerate().filter(|(_, o)| is_ready(**o)).map(|(i, _)| i).collect()
}

/// Sleeps on the eventcounts of (the first [`WAITV_MAX`] of) `objects` at once until one of the
/// objects is ready (returns their indices) or `until` passes (`None`). `words` is scratch.
///
/// The protocol is [`FastEventCount::announce`](crate::sync::eventcount::FastEventCount::announce)'s:
/// announce on every word, one barrier, check every object, sleep on every word.
fn sleep_on_all<'a>(
    objects: &[&'a dyn Waitable],
    words: &mut Vec<(&'a AtomicU32, u32)>,
    until: Deadline,
) -> Option<Vec<usize>> {
    if !futex::waitv_available() {
        return sleep_on_first(objects, until);
    }
    loop {
        words.clear();
        for o in objects {
            if words.len() == WAITV_MAX {
                break;
            }
            let ec = o.wake_source().ring.not_empty();
            let word = ec.word();
            // The same object twice: one entry (more distinct ones fit in the kernel's limit).
            if !words.iter().any(|(w, _)| std::ptr::eq(*w, word)) {
                words.push((word, ec.announce()));
            }
        }
        let sleep_until = heavy_barrier(until);
        let ready = ready_ones(objects, |o| o.is_ready());
        if !ready.is_empty() {
            return Some(ready);
        }
        if futex::wait_any(words, sleep_until).is_err() {
            return sleep_on_first(objects, until);
        }
        let ready = ready_ones(objects, |o| o.is_ready());
        if !ready.is_empty() {
            return Some(ready);
        }
        if deadline_passed(until) {
            return None;
        }
    }
}

/// Without `futex_waitv`: sleeps on the first object's eventcount, in slices of at most
/// [`POLL_SLICE`], and checks them all between slices. As [`sleep_on_all`] otherwise.
#[cold]
fn sleep_on_first(objects: &[&dyn Waitable], until: Deadline) -> Option<Vec<usize>> {
    let first = objects.first()?.wake_source().ring.not_empty();
    let mut slice = Duration::from_micros(50);
    loop {
        first.wait_until(slice_deadline(until, slice), || objects.iter().any(|o| o.is_ready()).then_some(()));
        let ready = ready_ones(objects, |o| o.is_ready());
        if !ready.is_empty() {
            return Some(ready);
        }
        if deadline_passed(until) {
            return None;
        }
        slice = (slice * 2).min(POLL_SLICE);
    }
}
