//! Cross-process synchronisation: lock words and their wait/wake.
//!
//! - [`mutex`]: `Mutex<T>`, `Lock`, and `RawLock`, the robust lock word under every locked object.
//! - [`rlock`]: `ReentrantMutex<T>` and `RLock`.
//! - [`eventcount`]: the wait/wake protocol under every blocking primitive, over [`shim`].
#![allow(unsafe_code)]

pub(crate) mod eventcount;
#[cfg(feature = "lock_api")]
pub(crate) mod lock_api_impl;
pub(crate) mod mutex;
pub(crate) mod rlock;
pub(crate) mod shim;
