//! shmproc: Python's `multiprocessing` toolkit for Rust, in shared memory.
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
pub use sync::mutex::{Lock, Mutex, MutexGuard};
pub use sync::rlock::{RLock, ReentrantMutex, ReentrantMutexGuard};
