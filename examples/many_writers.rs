//! Several writer processes feeding one reader through a Queue; the reader uses `wait` to
//! watch the queue and a control pipe at once. Messages from one writer arrive in order.
//!
//! Run with `cargo run --example many_writers`.

use std::time::Duration;

use shmproc::{Pipe, Process, Queue, Waitable, wait};

fn main() -> shmproc::Result<()> {
    const WRITERS: u32 = 4;
    const PER_WRITER: u32 = 1000;
    let q = Queue::<(u32, u32)>::with_capacity(64 * 1024, 0)?;
    let (control_rx, control_tx) = Pipe::new::<String>(false)?;

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let q = q.clone();
        let p = Process::new(move || {
            for seq in 0..PER_WRITER {
                q.put((w, seq)).expect("queue open");
            }
        });
        p.start()?;
        writers.push(p);
    }
    let announcer = Process::new(move || {
        control_tx.send(&"writers started".to_string()).expect("pipe open");
    });
    announcer.start()?;

    let mut next = vec![0u32; WRITERS as usize];
    let mut received = 0;
    let mut control_open = true;
    while received < WRITERS * PER_WRITER {
        let objects: Vec<&dyn Waitable> = if control_open { vec![&q, &control_rx] } else { vec![&q] };
        let ready = wait(&objects, Some(Duration::from_secs(10)));
        assert!(!ready.is_empty(), "nothing arrived for 10 s");
        if ready.contains(&1) {
            match control_rx.try_recv() {
                Ok(msg) => println!("control: {msg}"),
                Err(shmproc::Error::Empty) => {}
                Err(_) => control_open = false, // EOF once the announcer exited
            }
        }
        while let Ok((w, seq)) = q.try_get() {
            assert_eq!(seq, next[w as usize], "FIFO per writer");
            next[w as usize] += 1;
            received += 1;
        }
    }
    for p in writers.iter().chain([&announcer]) {
        p.join()?;
    }
    println!("received {received} messages from {WRITERS} writers, each writer's in order");
    Ok(())
}
