//! Cross-process synchronisation: lock words and their wait/wake.
//!
//! - [`mutex`]: `Mutex<T>`, `Lock`, and `RawLock`, the robust lock word under every locked object.
//! - [`rlock`]: `ReentrantMutex<T>` and `RLock`.
//! - [`eventcount`]: the wait/wake protocol under every blocking primitive, over [`shim`].
//! - [`semaphore`] over [`semcore`], [`event`], [`condvar`] over [`condcore`], [`barrier`] over
//!   [`barriercore`]: the `*core` files are the wait/wake protocols, written against [`shim`] only
//!   so that `tests/loom.rs` model-checks the very code that ships.
#![allow(unsafe_code)]

pub(crate) mod barrier;
pub(crate) mod barriercore;
pub(crate) mod condcore;
pub(crate) mod condvar;
pub(crate) mod event;
pub(crate) mod eventcount;
#[cfg(feature = "lock_api")]
pub(crate) mod lock_api_impl;
pub(crate) mod lockword;
pub(crate) mod mutex;
pub(crate) mod rlock;
pub(crate) mod semaphore;
pub(crate) mod semcore;
pub(crate) mod shim;
