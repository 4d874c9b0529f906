//! The tutorial's producer/consumer over a Queue: one producer process puts work items, two
//! consumer processes take them until a sentinel, and send results back on another queue.
//!
//! Run with `cargo run --example producer_consumer`.

use serde::{Deserialize, Serialize};
use shmproc::{Process, Queue};

#[derive(Serialize, Deserialize, Debug)]
enum Job {
    Square(u64),
    Stop,
}

fn main() -> shmproc::Result<()> {
    let jobs = Queue::<Job>::new()?;
    let results = Queue::<(u32, u64, u64)>::new()?;
    const CONSUMERS: u32 = 2;

    let mut workers = Vec::new();
    for id in 0..CONSUMERS {
        let (jobs, results) = (jobs.clone(), results.clone());
        let p = Process::new(move || {
            while let Ok(Job::Square(x)) = jobs.get() {
                results.put((id, x, x * x)).expect("results queue open");
            }
        });
        p.start()?;
        workers.push(p);
    }

    let producer = Process::new({
        let jobs = jobs.clone();
        move || {
            for x in 1..=20 {
                jobs.put(Job::Square(x)).expect("jobs queue open");
            }
            for _ in 0..CONSUMERS {
                jobs.put(Job::Stop).expect("jobs queue open");
            }
        }
    });
    producer.start()?;

    let mut total = 0;
    for _ in 0..20 {
        let (id, x, sq) = results.get()?;
        println!("consumer {id}: {x}^2 = {sq}");
        total += sq;
    }
    producer.join()?;
    for w in &workers {
        w.join()?;
    }
    println!("sum of squares 1..=20 = {total}");
    assert_eq!(total, (1..=20u64).map(|x| x * x).sum::<u64>());
    Ok(())
}
