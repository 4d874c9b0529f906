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
//! A process registers when it first creates or attaches a queue or pipe, and at the latest on
//! its first notification ([`notifier_registered`]). Registering can stall for milliseconds (the
//! kernel waits for an RCU grace period when the process has several threads), so it is done
//! up front, not on the first put. Forked children inherit the registration (it lives in the
//! address space) along with the cached answer; `exec` clears both.

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
    // Acquire: a registration another thread finished is complete before we rely on it.
    match STATE.load(Ordering::Acquire) {
        1 => true,
        2 => false,
        _ => register(),
    }
}

/// Registers this process now if it has not been (see the module docs: done when a queue or
/// pipe is created or attached, so that no put pays for it).
pub(crate) fn register_notifier() {
    let _ = notifier_registered();
}

#[cold]
fn register() -> bool {
    // SAFETY: membarrier takes no pointers; an unknown command fails with EINVAL.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) };
    STATE.store(if r == 0 { 1 } else { 2 }, Ordering::Release);
    // This call still fences fully (its caller sees `false`): a sleeper's barrier issued before
    // the registration did not reach this process.
    false
}

/// What [`global_barrier`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Barrier {
    /// Every CPU running a registered process ran a full barrier.
    Done,
    /// This kernel has no global expedited membarrier, so no process can have registered and
    /// every notifier uses full fences: the caller's own full fence suffices.
    Unsupported,
    /// Refused for this process only (a seccomp filter, say): registered notifiers elsewhere
    /// rely on a barrier that did not happen, so the caller must look again soon.
    Refused,
}

/// Runs a full memory barrier on every CPU running a thread of a registered process.
pub(crate) fn global_barrier() -> Barrier {
    // SAFETY: membarrier takes no pointers.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) };
    if r == 0 {
        return Barrier::Done;
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::ENOSYS | nix::errno::Errno::EINVAL => Barrier::Unsupported,
        _ => Barrier::Refused,
    }
}
