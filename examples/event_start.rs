//! The tutorial's event-driven start: workers get ready, then all wait on one `Event`; the main
//! process sets it and every worker starts at once. A `Barrier` then lines them up for a second
//! round, whose action (run once, by the last to arrive) announces it.
//!
//! Python:
//! ```python
//! def worker(i, ready, go):
//!     ready.release()         # "I'm ready"
//!     go.wait()               # until the starter fires
//!     print(f"worker {i} running")
//! ready, go = Semaphore(0), Event()
//! ...
//! for _ in range(n): ready.acquire()
//! go.set()
//! ```

use std::time::{Duration, Instant};

use shmproc::{Barrier, Event, Process, Semaphore};

const WORKERS: u32 = 4;

fn main() -> shmproc::Result<()> {
    let ready = Semaphore::new(0)?;
    let go = Event::new()?;
    let barrier = Barrier::new(WORKERS)?.with_action(|| println!("  -- all {WORKERS} at the barrier: round two --"));
    let procs: Vec<Process> = (0..WORKERS)
        .map(|i| {
            let (ready, go, barrier) = (ready.clone(), go.clone(), barrier.clone());
            Process::new(move || {
                ready.release().expect("the count stays small");
                if !go.wait_timeout(Duration::from_secs(10)) {
                    eprintln!("worker {i}: never started");
                    shmproc::exit(2);
                }
                println!("  worker {i} running");
                match barrier.wait_timeout(Duration::from_secs(10)) {
                    Ok(index) => println!("  worker {i} passed the barrier as #{index}"),
                    Err(e) => {
                        eprintln!("worker {i}: {e}");
                        shmproc::exit(3);
                    }
                }
            })
        })
        .collect();
    for p in &procs {
        p.start()?;
    }
    for _ in 0..WORKERS {
        ready.acquire();
    }
    println!("all {WORKERS} workers ready; go!");
    let t = Instant::now();
    go.set();
    for p in &procs {
        p.join()?;
        assert_eq!(p.exitcode(), Some(0));
    }
    println!("done in {:?}", t.elapsed());
    Ok(())
}
