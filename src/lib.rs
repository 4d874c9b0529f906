//! # shmproc
//!
//! Python's `multiprocessing` toolkit for Rust, living in shared memory: processes that share
//! typed values and arrays, cross-process locks that survive the death of their holder,
//! semaphores, events, conditions, barriers, a lock-free ring-buffer queue and pipes, all in
//! mmap'd memory that forked children inherit or that any process of the same user attaches to
//! by name, type-checked.
//!
//! | Python | shmproc |
//! |---|---|
//! | `Process(target=f)`, `start/join/is_alive/terminate/kill/exitcode/pid/name/daemon/close` | [`Process`] |
//! | `active_children()`, `current_process()`, `parent_process()`, `cpu_count()`, `sys.exit(n)` | [`active_children`], [`current_process`], [`parent_process`], [`cpu_count`], [`exit`] |
//! | `Lock()`, `RLock()` | [`Mutex<T>`] / [`Lock`] (= `Mutex<()>`), [`ReentrantMutex<T>`] / [`RLock`]; owner death → [`LockError::Poisoned`] |
//! | `Value('d', 0.0)`, `Array('i', 10)` | [`Value<T>`], [`Array<T>`] (`T: bytemuck::Pod`, behind a lock that survives its holder) |
//! | `RawValue`, `RawArray` | [`RawValue<T>`], [`RawArray<T>`] (atomics, no lock) |
//! | `shared_memory.SharedMemory(name, create, size)` | [`SharedMemory`] |
//! | `Semaphore(n)`, `BoundedSemaphore(n)`: `acquire/release/get_value` | [`Semaphore`], [`BoundedSemaphore`]: `acquire/try_acquire/acquire_timeout`, `acquire_python(block, timeout)`, `release`, `value`; a bounded over-release → [`Error::ReleasedTooManyTimes`] |
//! | `Event()`: `set/clear/is_set/wait` | [`Event`]: `set/clear/is_set`, `wait/try_wait/wait_timeout`, `wait_python(timeout)` |
//! | `Condition(lock)`: `wait/wait_for/notify/notify_all` | [`Condition`] (`new()` with its own [`Lock`], or `with_lock(lock)`): `wait/try_wait/wait_timeout(guard)`, `wait_while/wait_for`, `notify(n)/notify_one/notify_all`, Python-style `acquire/release/wait_python` |
//! | `Barrier(parties, action, timeout)`: `wait/abort/reset` | [`Barrier`] (`new(parties)`, `.with_action(f)`, `.with_timeout(..)`): `wait/try_wait/wait_timeout`, `abort/reset`, `parties/n_waiting/is_broken`; broken → [`Error::BrokenBarrier`] |
//! | `Queue(maxsize)`: `put/get/put_nowait/get_nowait/qsize/empty/full/close` | [`Queue<T>`]: `put/try_put/put_timeout` (the value comes back in [`TryPutError`]), `get/try_get/get_timeout`, `put_bytes/get_bytes/get_bytes_into`, `put_many/get_many`, `qsize/is_empty/is_full`, `close` (puts fail, gets drain then [`Error::Closed`]) |
//! | `SimpleQueue()` | [`SimpleQueue<T>`]: `put/try_put/put_timeout`, `get/try_get/get_timeout`, `is_empty`, `close` |
//! | `JoinableQueue(maxsize)`: `task_done/join` | [`JoinableQueue<T>`]: a [`Queue`] plus `task_done` ([`Error::TaskDoneTooManyTimes`]) and `join/try_join/join_timeout` |
//! | `Pipe(duplex)` → `Connection`: `send/recv/send_bytes/recv_bytes/recv_bytes_into/poll/close` | [`Pipe::new::<T>(duplex)`](Pipe::new) → ([`Connection<T>`], [`Connection<T>`]): `send/try_send/send_timeout`, `recv/try_recv/recv_timeout`, `send_bytes`, `recv_bytes`, `recv_bytes_into` (each with `try_` and `_timeout` forms; [`Error::BufferTooShort`]), `poll(timeout)`, `close`; [`Error::Eof`] once the peer closed or died |
//! | `multiprocessing.connection.wait(objects, timeout)` | [`wait`] over connections and queues |
//!
//! Every object exists anonymous (`Value::new(0)`, inherited by children forked afterwards)
//! and named (`Value::create("name", 0)`, `Value::<i64>::open("name")` from any process of the
//! same user; opening with the wrong type or kind is a typed error, never undefined behaviour).
//! Blocking calls come as a trio: `lock()`, `try_lock()`, `lock_timeout(d)` (monotonic clock).
//!
//! ## Two processes, one counter
//!
//! ```
//! use shmproc::{Process, Value};
//!
//! # fn main() -> shmproc::Result<()> {
//! let counter = Value::new(0u64)?;
//! let child = Process::new({
//!     let counter = counter.clone();
//!     move || {
//!         for _ in 0..10_000 {
//!             *counter.lock().expect("lock") += 1;
//!         }
//!     }
//! });
//! child.start()?;
//! for _ in 0..10_000 {
//!     *counter.lock()? += 1; // Python: with counter.get_lock(): counter.value += 1
//! }
//! child.join()?;
//! assert_eq!(counter.get()?, 20_000);
//! # Ok(())
//! # }
//! ```
//!
//! ## Locks survive their holder
//!
//! Python's `Lock` waits for ever when its holder is killed. Ours is a futex word holding the
//! owner's thread id: uncontended lock and unlock are one CAS and one swap, no syscall. A
//! contended locker sleeps in slices (10 ms doubling to 200 ms) and, when a slice ends, checks in
//! `/proc` whether the owner thread still lives (same thread id *and* start time, so a recycled
//! id is not mistaken for it). If it died, the locker takes the lock over and gets
//! [`LockError::Poisoned`] carrying the guard, like `std::sync::Mutex` after a panic, and
//! [`Mutex::clear_poison`] makes it normal again. A holder's death is therefore noticed within
//! 10–200 ms of it, not at once, and never turns into a hang.
//!
//! ## Platform
//!
//! Linux x86_64, kernel ≥ 5.3 (`pidfd_open`), `/proc` mounted (owner-liveness checks). No libc
//! requirement beyond what `std` needs. The start method is fork. Named objects live in
//! `/dev/shm`.
//!
//! Thread ids are per PID namespace: a lock records its owner's id as seen from the owner's
//! namespace, and a locker in another namespace would check the wrong thread in its own `/proc`.
//! Do not share named objects between processes in different PID namespaces (e.g. containers
//! that share `/dev/shm` but not their PID namespace).
#![warn(missing_docs)]

mod error;
mod layout;
mod pipe;
mod process;
mod queue;
mod segment;
mod shared;
mod sync;
mod sys;

pub use error::{Error, LockError, LockResult, PoisonError, Result, TryPutError};
pub use layout::Kind;
pub use pipe::{Connection, Pipe, Waitable, WakeSource, wait};
pub use process::{
    CurrentProcess, ParentProcess, Process, active_children, cpu_count, current_process, exit, parent_process,
};
pub use queue::joinable::JoinableQueue;
pub use queue::queue::{DEFAULT_CAPACITY, Queue};
pub use queue::simple::SimpleQueue;
#[cfg(feature = "kill-points")]
#[doc(hidden)]
pub use queue::{KillPoint, set_kill_point};
pub use segment::{MAX_NAME_LEN, sweep};
pub use shared::array::Array;
pub use shared::memory::SharedMemory;
pub use shared::raw::{AtomicElement, RawArray, RawValue};
pub use shared::value::Value;
pub use sync::barrier::Barrier;
pub use sync::condvar::{Condition, ConditionGuard, ConditionLock, DEATH_POLL, WaitTimeoutResult};
pub use sync::event::Event;
#[cfg(feature = "lock_api")]
pub use sync::lock_api_impl::RawRobustMutex;
pub use sync::mutex::{Lock, Mutex, MutexGuard};
pub use sync::rlock::{RLock, ReentrantMutex, ReentrantMutexGuard};
pub use sync::semaphore::{BoundedSemaphore, SEM_VALUE_MAX, Semaphore};
