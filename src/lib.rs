//! shmproc: Python's `multiprocessing` toolkit for Rust, in shared memory.
#![warn(missing_docs)]

mod error;
mod layout;
mod segment;
mod sync;
mod sys;

pub use error::{Error, LockError, LockResult, PoisonError, Result};
pub use layout::Kind;
pub use segment::{MAX_NAME_LEN, sweep};
pub use sync::barrier::Barrier;
pub use sync::condvar::{Condition, ConditionGuard, ConditionLock, DEATH_POLL, WaitTimeoutResult};
pub use sync::event::Event;
pub use sync::mutex::{Lock, Mutex, MutexGuard};
pub use sync::rlock::{RLock, ReentrantMutex, ReentrantMutexGuard};
pub use sync::semaphore::{BoundedSemaphore, SEM_VALUE_MAX, Semaphore};
