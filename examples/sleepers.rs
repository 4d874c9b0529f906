//! The classic tutorial: start 10 processes that sleep and print, join them in order, then start
//! 10 more and let them all run at once.
//!
//! Python:
//! ```python
//! def worker(i):
//!     time.sleep(0.1 * (10 - i))
//!     print(f"worker {i} done")
//! procs = [Process(target=worker, args=(i,)) for i in range(10)]
//! for p in procs: p.start()
//! for p in procs: p.join()
//! ```

use std::time::{Duration, Instant};

use shmproc::Process;

fn worker(i: u64) {
    std::thread::sleep(Duration::from_millis(20 * (10 - i)));
    println!("  worker {i} (pid {}) done", std::process::id());
}

fn main() -> shmproc::Result<()> {
    println!("one at a time: start, join, start, join ...");
    let t = Instant::now();
    for i in 0..10 {
        let p = Process::new(move || worker(i));
        p.start()?;
        p.join()?;
    }
    println!("sequential: {:?}", t.elapsed());

    println!("all at once: start all, then join all in order");
    let t = Instant::now();
    let procs: Vec<Process> = (0..10).map(|i| Process::new(move || worker(i))).collect();
    for p in &procs {
        p.start()?;
    }
    for p in &procs {
        p.join()?;
        assert_eq!(p.exitcode(), Some(0));
    }
    println!("concurrent: {:?} (the longest sleep, not the sum)", t.elapsed());
    Ok(())
}
