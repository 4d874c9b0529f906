//! The children this process started and has not reaped yet: `active_children()` lists them,
//! `start()` and `active_children()` reap the finished ones, and at exit the parent terminates
//! daemons and joins the rest (Python's `_exit_function`).

use parking_lot::Mutex as LocalMutex;

use super::Process;
use crate::sys::proc::ProcessSlot;

/// This process's registry. A forked child installs a fresh one ([`forget_inherited`]): the
/// parent's children are not its children, and the parent's lock may be held for ever in it.
static REGISTRY: ProcessSlot<LocalMutex<Vec<Process>>> = ProcessSlot::new();

fn children() -> &'static LocalMutex<Vec<Process>> {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if REGISTRY.get().is_none() {
            REGISTRY.set(LocalMutex::new(Vec::new()));
        }
    });
    REGISTRY.get().expect("the registry is installed before first use")
}

/// In a fresh child: start with no children.
pub(super) fn forget_inherited() {
    REGISTRY.set(LocalMutex::new(Vec::new()));
}

/// Remembers a started child.
pub(super) fn register(p: Process) {
    install_exit_hook();
    children().lock().push(p);
}

/// Forgets children that ended (reaping them).
pub(super) fn reap_finished() {
    let mut kids = children().lock();
    kids.retain(|p| p.is_alive());
}

/// Children still running.
pub(super) fn live() -> Vec<Process> {
    children().lock().clone()
}

/// At normal exit of the parent: terminate daemon children, join the others, as Python does.
fn at_exit() {
    if super::child::in_child() {
        return; // a child did this at the end of its closure (`child::run`)
    }
    finish_children();
}

/// Python's `_exit_function`: terminate daemon children, then join every child. Run by the main
/// process at exit and by every child after its closure.
pub(super) fn finish_children() {
    let kids = std::mem::take(&mut *children().lock());
    for p in &kids {
        if p.is_daemon() {
            let _ = p.terminate();
        }
    }
    for p in &kids {
        let _ = p.join();
    }
}

fn install_exit_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| crate::sys::proc::at_exit(at_exit));
}
