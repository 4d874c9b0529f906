//! The only code in the crate that talks to the operating system.
//!
//! Everything above this module is written against these small, typed wrappers: futexes, shared
//! memory file descriptors, the monotonic clock, and process control (fork, pidfd, waitpid,
//! signals, thread identity and liveness from /proc). Every `unsafe` block in here performs one FFI call or
//! one raw-pointer operation and says why it is sound.
#![allow(unsafe_code)]

pub(crate) mod clock;
pub(crate) mod fd;
pub(crate) mod futex;
pub(crate) mod membarrier;
pub(crate) mod proc;

pub(crate) use nix::errno::Errno;
