//! Shared data: Python's `Value`, `Array`, `RawValue`, `RawArray` and
//! `shared_memory.SharedMemory`.
//!
//! - [`value`]: `Value<T>` — one `T: Pod` behind a robust lock.
//! - [`array`]: `Array<T>` — a fixed-length `[T]` behind a robust lock.
//! - [`raw`]: `RawValue<T>` / `RawArray<T>` — no lock; atomic integers and floats.
//! - [`memory`]: `SharedMemory` — raw bytes by name.
#![allow(unsafe_code)]

pub(crate) mod array;
pub(crate) mod memory;
pub(crate) mod raw;
pub(crate) mod value;
