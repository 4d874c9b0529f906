//! The tutorial's semaphore-limited workers: ten processes want a resource only three may use at
//! once; a `Semaphore(3)` lets three in and queues the rest, and a shared counter proves it.
//!
//! Python:
//! ```python
//! def worker(i, sem, inside, most):
//!     with sem:
//!         with inside.get_lock():
//!             inside.value += 1
//!             most.value = max(most.value, inside.value)
//!         time.sleep(0.05)
//!         with inside.get_lock():
//!             inside.value -= 1
//! sem = Semaphore(3)
//! procs = [Process(target=worker, args=(i, sem, inside, most)) for i in range(10)]
//! ```

use std::time::{Duration, Instant};

use shmproc::{Mutex, Process, Semaphore};

const LIMIT: u32 = 3;

fn main() -> shmproc::Result<()> {
    let sem = Semaphore::new(LIMIT)?;
    // [inside now, most inside at once]
    let stats = Mutex::new([0u32; 2])?;
    let t = Instant::now();
    let procs: Vec<Process> = (0..10)
        .map(|i| {
            let (sem, stats) = (sem.clone(), stats.clone());
            Process::new(move || {
                sem.acquire();
                {
                    let mut s = stats.lock().expect("no holder dies in this example");
                    s[0] += 1;
                    s[1] = s[1].max(s[0]);
                    println!("  worker {i:2} in  ({} inside)", s[0]);
                }
                std::thread::sleep(Duration::from_millis(50));
                {
                    let mut s = stats.lock().expect("no holder dies in this example");
                    s[0] -= 1;
                    println!("  worker {i:2} out");
                }
                sem.release().expect("the count never passes SEM_VALUE_MAX here");
            })
        })
        .collect();
    for p in &procs {
        p.start()?;
    }
    for p in &procs {
        p.join()?;
        assert_eq!(p.exitcode(), Some(0));
    }
    let most = stats.lock()?[1];
    println!("10 workers of 50 ms, {LIMIT} at a time: {:?}; at most {most} inside at once", t.elapsed());
    assert!(most <= LIMIT);
    assert_eq!(sem.value(), LIMIT);
    Ok(())
}
