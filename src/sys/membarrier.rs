//! `membarrier(2)`: the heavy half of an asymmetric fence between processes.
//!
//! A notifier that publishes a change and then looks whether anyone sleeps needs a full fence
//! between the two (store, then load: the one reordering x86 does), and a waiter that announces
//! its sleep and then looks at the condition needs one too. When notifications are frequent and
//! sleeps rare, the notifier's fence can be a compiler fence instead if every sleeper issues
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which runs a full memory barrier on every CPU
//! currently running a thread of a process that registered for it (and a context switch is one
//! already). This is the pattern of the `membarrier(2)` manual's example.
//!
//! A process registers on its first notification ([`notifier_registered`]); forked children
//! inherit the registration (it lives in the address space) along with the cached answer.

use std::sync::atomic::{AtomicU8, Ordering};

use nix::libc;

const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;

/// 0: not asked yet; 1: registered; 2: unavailable (old kernel, or a seccomp filter).
static STATE: AtomicU8 = AtomicU8::new(0);

/// Whether this process is registered for global expedited membarriers, registering on the first
/// call. When it is, others' [`global_barrier`] calls order its memory accesses for it.
#[inline]
pub(crate) fn notifier_registered() -> bool {
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => register(),
    }
}

#[cold]
fn register() -> bool {
    // SAFETY: membarrier takes no pointers; an unknown command fails with EINVAL.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) };
    STATE.store(if r == 0 { 1 } else { 2 }, Ordering::Relaxed);
    // This call still fences fully (its caller sees `false`): a sleeper's barrier issued before
    // the registration did not reach this process.
    false
}

/// Runs a full memory barrier on every CPU running a thread of a registered process. False if
/// the kernel refuses (then the caller must not rely on registered notifiers' compiler fences).
pub(crate) fn global_barrier() -> bool {
    // SAFETY: membarrier takes no pointers.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) };
    r == 0
}
