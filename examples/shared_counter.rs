//! The classic tutorial: several processes increment one counter under a lock.
//!
//! Python:
//! ```python
//! counter = Value('i', 0)
//! def work(counter):
//!     for _ in range(10_000):
//!         with counter.get_lock():
//!             counter.value += 1
//! ```
//! In Rust the lock and the value are one object: `*counter.lock()? += 1`.

use shmproc::{Lock, Process, Value};

fn main() -> shmproc::Result<()> {
    let counter = Value::new(0i64)?;
    let procs: Vec<Process> = (0..4)
        .map(|_| {
            let counter = counter.clone();
            Process::new(move || {
                for _ in 0..10_000 {
                    *counter.lock().expect("counter lock") += 1;
                }
            })
        })
        .collect();
    for p in &procs {
        p.start()?;
    }
    for p in &procs {
        p.join()?;
    }
    println!("4 processes x 10000 increments under the lock = {}", counter.get()?);

    // The same with a separate Lock guarding printing, as in Python's `with lock: print(...)`.
    let print_lock = Lock::new(())?;
    let procs: Vec<Process> = (0..3)
        .map(|i| {
            let print_lock = print_lock.clone();
            Process::new(move || {
                let _g = print_lock.lock().expect("print lock");
                println!("hello from process {i} (pid {})", std::process::id());
            })
        })
        .collect();
    for p in &procs {
        p.start()?;
    }
    for p in &procs {
        p.join()?;
    }
    Ok(())
}
