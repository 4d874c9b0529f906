//! shmproc: Python's `multiprocessing` toolkit for Rust, in shared memory.
#![warn(missing_docs)]

mod error;
mod layout;
mod process;
mod segment;
mod shared;
mod sync;
mod sys;

pub use error::{Error, LockError, LockResult, PoisonError, Result};
pub use layout::Kind;
pub use process::{
    CurrentProcess, ParentProcess, Process, active_children, cpu_count, current_process, exit, parent_process,
};
pub use segment::{MAX_NAME_LEN, sweep};
pub use shared::array::Array;
pub use shared::memory::SharedMemory;
pub use shared::raw::{AtomicElement, RawArray, RawValue};
pub use shared::value::Value;
#[cfg(feature = "lock_api")]
pub use sync::lock_api_impl::RawRobustMutex;
pub use sync::mutex::{Lock, Mutex, MutexGuard};
pub use sync::rlock::{RLock, ReentrantMutex, ReentrantMutexGuard};
