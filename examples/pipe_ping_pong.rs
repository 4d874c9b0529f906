//! The tutorial's Pipe ping-pong between a Producer and a Consumer process: the producer sends
//! numbered pings, the consumer answers each with a pong, then the producer closes its end and
//! the consumer sees end-of-file.
//!
//! Run with `cargo run --example pipe_ping_pong`.

use shmproc::{Error, Pipe, Process};

fn main() -> shmproc::Result<()> {
    let (producer_end, consumer_end) = Pipe::new::<String>(true)?;

    let consumer = Process::new(move || {
        loop {
            match consumer_end.recv() {
                Ok(msg) => consumer_end.send(&msg.replace("ping", "pong")).expect("pipe open"),
                Err(Error::Eof) => break, // the producer closed its end
                Err(e) => panic!("consumer: {e}"),
            }
        }
    })
    .with_name("Consumer");
    let producer = Process::new(move || {
        for i in 0..5 {
            producer_end.send(&format!("ping {i}")).expect("pipe open");
            let answer = producer_end.recv().expect("consumer alive");
            println!("producer got {answer:?}");
        }
        producer_end.close();
    })
    .with_name("Producer");

    consumer.start()?;
    producer.start()?;
    producer.join()?;
    consumer.join()?;
    println!("producer exit {:?}, consumer exit {:?}", producer.exitcode(), consumer.exitcode());
    Ok(())
}
