//! A tour of shmproc: every primitive, across real processes, printing what happens.
//!
//! Run it with `cargo run --release --example tour`.

use std::time::{Duration, Instant};

use shmproc::{
    Array, Barrier, BoundedSemaphore, Condition, Error, Event, JoinableQueue, LockError, Mutex, Pipe, Process, Queue,
    RLock, RawArray, RawValue, Semaphore, SharedMemory, Value, Waitable, wait,
};

// Functions returning `shmproc::Result` can `?` a lock: a poisoned lock becomes `Error::Poisoned`.
type Res = shmproc::Result<()>;

fn section(title: &str) {
    println!("\n== {title}");
}

/// Spins (bounded) until `cond` holds.
fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn processes() -> Res {
    section("Process: start, join, exit codes");
    let ok = Process::new(|| println!("   child {}: hello", std::process::id())).with_name("greeter");
    let exits = Process::new(|| shmproc::exit(7));
    let panics = Process::new(|| panic!("a child panicked on purpose (the tour expects this)"));
    let sleeper = Process::new(|| std::thread::sleep(Duration::from_secs(60)));
    for p in [&ok, &exits, &panics, &sleeper] {
        p.start()?;
    }
    for p in [&ok, &exits, &panics] {
        p.join()?;
    }
    println!(
        "   live children: {:?}",
        shmproc::active_children().iter().map(|p| p.name().to_owned()).collect::<Vec<_>>()
    );
    sleeper.terminate()?;
    sleeper.join()?;
    for p in [&ok, &exits, &panics, &sleeper] {
        println!("   {:<10} pid {:>7}  exitcode {:?}", p.name(), p.pid().unwrap_or(0), p.exitcode());
    }
    println!("   cpu_count() = {}, current_process() = {:?}", shmproc::cpu_count(), shmproc::current_process().name);
    Ok(())
}

fn values_and_arrays() -> Res {
    section("Value, Array, RawValue, RawArray: shared data");
    let counter = Value::new(0u64)?;
    let squares = Array::<u32>::new(8)?;
    let ticks = RawValue::new(0u64)?;
    let slots = RawArray::<i32>::new(4)?;
    let workers: Vec<Process> = (0..4)
        .map(|w| {
            let (counter, squares, ticks, slots) = (counter.clone(), squares.clone(), ticks.clone(), slots.clone());
            Process::new(move || {
                for _ in 0..10_000 {
                    *counter.lock().expect("lock") += 1;
                    ticks.fetch_add(1);
                }
                squares.set(w, (w * w) as u32).expect("in range");
                slots.store(w, -(w as i32)).expect("in range");
            })
        })
        .collect();
    let t = Instant::now();
    for w in &workers {
        w.start()?;
    }
    for w in &workers {
        w.join()?;
    }
    println!("   4 processes x 10000 locked increments: counter = {} ({:?})", counter.get()?, t.elapsed());
    println!("   lock-free RawValue ticks = {}", ticks.load());
    println!("   Array written by the children: {:?}", squares.to_vec()?);
    println!("   RawArray: {:?}", slots.to_vec());
    Ok(())
}

fn robust_locks() -> Res {
    section("Mutex: a holder killed with SIGKILL does not wedge the lock");
    let account = Mutex::new(100i64)?;
    let holding = RawValue::new(0u32)?;
    let victim = Process::new({
        let (account, holding) = (account.clone(), holding.clone());
        move || {
            let mut g = account.lock().expect("lock");
            *g -= 30; // half-way through a transfer...
            holding.store(1);
            std::thread::sleep(Duration::from_secs(60)); // ...and killed here
        }
    });
    victim.start()?;
    wait_until(|| holding.load() == 1);
    println!("   child {} holds the lock; kill -9 it", victim.pid().unwrap_or(0));
    victim.kill()?;
    victim.join()?;
    match account.lock_timeout(Duration::from_secs(5)) {
        Err(LockError::Poisoned(p)) => {
            let g = p.into_inner();
            println!("   next locker: poisoned (the holder died); data as left: {} -> repair it", *g);
            drop(g);
            account.clear_poison();
        }
        Ok(g) => println!("   unexpected: not poisoned ({})", *g),
        Err(e) => println!("   unexpected: {e}"),
    }
    *account.lock()? = 100;
    println!("   after clear_poison(): lock works, balance {}", *account.lock()?);
    println!("   (Python's Lock would wait for ever here.)");

    section("RLock: the owner re-enters; others wait");
    let rlock = RLock::new()?;
    let g1 = rlock.lock()?;
    let g2 = rlock.lock()?;
    let other = Process::new({
        let rlock = rlock.clone();
        move || shmproc::exit(if rlock.try_lock().is_err() { 0 } else { 1 })
    });
    other.start()?;
    other.join()?;
    println!("   held twice by us; another process's try_lock failed: {}", other.exitcode() == Some(0));
    drop(g2);
    drop(g1);
    println!("   released twice: locked = {}", rlock.is_locked());
    Ok(())
}

fn synchronisation() -> Res {
    section("Semaphore: at most 2 of 5 workers inside at once");
    let slots = Semaphore::new(2)?;
    let inside = RawValue::new(0i32)?;
    let peak = RawValue::new(0i32)?;
    let workers: Vec<Process> = (0..5)
        .map(|_| {
            let (slots, inside, peak) = (slots.clone(), inside.clone(), peak.clone());
            Process::new(move || {
                slots.acquire();
                let now = inside.fetch_add(1) + 1;
                let mut seen = peak.load();
                while now > seen {
                    match peak.compare_exchange(seen, now) {
                        Ok(_) => break,
                        Err(actual) => seen = actual,
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
                inside.fetch_sub(1);
                slots.release().expect("release");
            })
        })
        .collect();
    for w in &workers {
        w.start()?;
    }
    for w in &workers {
        w.join()?;
    }
    println!("   most workers inside at once: {} (semaphore value back to {})", peak.load(), slots.value());
    let bounded = BoundedSemaphore::new(1)?;
    match bounded.release() {
        Err(e) => println!("   BoundedSemaphore(1).release() without acquire: {e}"),
        Ok(()) => println!("   unexpected: released above the bound"),
    }

    section("Event: workers wait for the starting gun");
    let go = Event::new()?;
    let ready = Semaphore::new(0)?;
    let runners: Vec<Process> = (0..3)
        .map(|i| {
            let (go, ready) = (go.clone(), ready.clone());
            Process::new(move || {
                ready.release().expect("release");
                let started = go.wait_timeout(Duration::from_secs(10));
                shmproc::exit(if started { i } else { 100 });
            })
        })
        .collect();
    for r in &runners {
        r.start()?;
    }
    for _ in 0..3 {
        ready.acquire_timeout(Duration::from_secs(10));
    }
    let t = Instant::now();
    go.set();
    for r in &runners {
        r.join()?;
    }
    println!(
        "   3 waiting processes released by one set() in {:?}; exit codes {:?}",
        t.elapsed(),
        runners.iter().map(|r| r.exitcode()).collect::<Vec<_>>()
    );

    section("Condition: a consumer waits for a producer's data");
    let cond = Condition::with_lock(Mutex::new(0u64)?)?;
    let consumer = Process::new({
        let cond = cond.clone();
        move || {
            let guard = cond.lock().lock().expect("lock");
            let (guard, ok) = cond.wait_for(guard, |g| **g >= 3, Some(Duration::from_secs(10))).expect("wait_for");
            shmproc::exit(if ok { *guard as i32 } else { 100 });
        }
    });
    consumer.start()?;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(5));
        let mut g = cond.lock().lock()?;
        *g += 1;
        cond.notify_all()?;
    }
    consumer.join()?;
    println!("   the consumer woke when the value reached {:?}", consumer.exitcode());

    section("Barrier: 3 processes meet 5 times; the last to arrive runs the action");
    let rounds = RawValue::new(0u32)?;
    let barrier = Barrier::new(3)?;
    let parties: Vec<Process> = (0..3)
        .map(|_| {
            let rounds = rounds.clone();
            let barrier = barrier.clone().with_action(move || {
                rounds.fetch_add(1);
            });
            Process::new(move || {
                for _ in 0..5 {
                    barrier.wait_timeout(Duration::from_secs(10)).expect("barrier");
                }
            })
        })
        .collect();
    for p in &parties {
        p.start()?;
    }
    for p in &parties {
        p.join()?;
    }
    println!("   generations completed (actions run): {}", rounds.load());
    let lonely = Barrier::new(2)?;
    match lonely.wait_timeout(Duration::from_millis(50)) {
        Err(e) => println!("   a party alone with a 50 ms timeout: {e}; broken = {}", lonely.is_broken()),
        Ok(i) => println!("   unexpected: passed with index {i}"),
    }
    Ok(())
}

fn named_objects() -> Res {
    section("Named objects: attach by name from any process, type-checked");
    let name = format!("shmproc-tour-{}", std::process::id());
    let v = Value::create(&name, 41u64)?;
    let child = Process::new({
        let name = name.clone();
        move || {
            // A process that did not create it opens it by name.
            let v = Value::<u64>::open(&name).expect("open by name");
            *v.lock().expect("lock") += 1;
        }
    });
    child.start()?;
    child.join()?;
    println!("   Value {name:?} after the child's increment: {}", v.get()?);
    match Value::<u32>::open(&name) {
        Err(e) => println!("   opening it as Value<u32>: {e}"),
        Ok(_) => println!("   unexpected: opened with the wrong type"),
    }
    v.unlink()?;

    let shm_name = format!("shmproc-tour-shm-{}", std::process::id());
    let shm = SharedMemory::create(&shm_name, 64)?;
    shm.write_at(0, b"bytes by name")?;
    let mut buf = [0u8; 13];
    SharedMemory::open(&shm_name)?.read_at(0, &mut buf)?;
    println!("   SharedMemory {:?}: {:?}", shm, String::from_utf8_lossy(&buf));
    shm.unlink()?;
    Ok(())
}

fn queues() -> Res {
    section("Queue: one producer, two consumers, each in its own process");
    const ITEMS: u64 = 10_000;
    let work = Queue::<Option<u64>>::new()?;
    let results = Queue::<(u32, u64, u64)>::new()?; // (consumer, items taken, their sum)
    let producer = Process::new({
        let work = work.clone();
        move || {
            for i in 1..=ITEMS {
                work.put(Some(i)).expect("put");
            }
            work.put(None).expect("put"); // one sentinel per consumer
            work.put(None).expect("put");
        }
    });
    let consumers: Vec<Process> = (0..2)
        .map(|c| {
            let (work, results) = (work.clone(), results.clone());
            Process::new(move || {
                let (mut n, mut sum) = (0, 0);
                while let Some(i) = work.get_timeout(Duration::from_secs(10)).expect("get") {
                    n += 1;
                    sum += i;
                    if n % 100 == 0 {
                        std::thread::sleep(Duration::from_millis(1)); // some work, so both get a share
                    }
                }
                results.put((c, n, sum)).expect("put");
            })
        })
        .collect();
    let t = Instant::now();
    producer.start()?;
    for c in &consumers {
        c.start()?;
    }
    let mut total = 0;
    for _ in 0..2 {
        let (c, n, sum) = results.get_timeout(Duration::from_secs(10))?;
        println!("   consumer {c} took {n} items");
        total += sum;
    }
    for p in consumers.iter().chain([&producer]) {
        p.join()?;
    }
    println!("   sum of everything taken: {total} (expected {}), in {:?}", ITEMS * (ITEMS + 1) / 2, t.elapsed());

    section("JoinableQueue: join() returns when every task is done");
    let jobs = JoinableQueue::<u32>::new()?;
    let done = RawValue::new(0u32)?;
    let worker = Process::new({
        let (jobs, done) = (jobs.clone(), done.clone());
        move || {
            for _ in 0..5 {
                let ms = jobs.get_timeout(Duration::from_secs(10)).expect("get");
                std::thread::sleep(Duration::from_millis(ms.into()));
                done.fetch_add(1);
                jobs.task_done().expect("task_done");
            }
        }
    });
    worker.start()?;
    for ms in [10, 20, 5, 15, 10] {
        jobs.put(ms)?;
    }
    let t = Instant::now();
    let all = jobs.join_timeout(Duration::from_secs(10))?;
    println!("   join() returned {all} after {:?}; tasks done by the worker: {}", t.elapsed(), done.load());
    worker.join()?;
    match jobs.task_done() {
        Err(e) => println!("   one task_done() too many: {e}"),
        Ok(()) => println!("   unexpected: task_done accepted"),
    }

    section("Queue::close: puts fail at once, gets drain what is left, a blocked get wakes");
    let q = Queue::<u32>::new()?;
    let blocked = Process::new({
        let q = q.clone();
        // Waits on an empty queue until the parent closes it.
        move || shmproc::exit(matches!(q.get_timeout(Duration::from_secs(10)), Err(Error::Closed)) as i32)
    });
    blocked.start()?;
    std::thread::sleep(Duration::from_millis(20));
    q.close();
    blocked.join()?;
    println!("   a consumer blocked in get() woke with Closed: {}", blocked.exitcode() == Some(1));
    let q = Queue::<u32>::new()?;
    q.put(1)?;
    q.put(2)?;
    q.close();
    match q.try_put(3) {
        Err(e) => {
            let why = e.to_string();
            println!("   put after close: {why} (and the value comes back: {})", e.into_value());
        }
        Ok(()) => println!("   unexpected: put after close"),
    }
    println!("   gets after close: {:?}, {:?}, then {:?}", q.get()?, q.get()?, q.get().map_err(|e| e.to_string()));

    section("Named queue: a child opens it by name");
    let name = format!("shmproc-tour-queue-{}", std::process::id());
    let q = Queue::<String>::create(&name, 64 * 1024, 0)?;
    let child = Process::new({
        let name = name.clone();
        move || {
            let q = Queue::<String>::open(&name).expect("open by name");
            q.put(format!("hello from pid {} through {name:?}", std::process::id())).expect("put");
        }
    });
    child.start()?;
    println!("   got: {}", q.get_timeout(Duration::from_secs(10))?);
    child.join()?;
    q.unlink()?;

    section("Queue: a producer killed with SIGKILL mid-stream does not wedge it");
    let q = Queue::<(u8, u64)>::new()?;
    let sent_by_victim = RawValue::new(0u64)?;
    let victim = Process::new({
        let (q, sent) = (q.clone(), sent_by_victim.clone());
        move || {
            for i in 0.. {
                q.put((0, i)).expect("put");
                sent.store(i + 1);
            }
        }
    });
    let survivor = Process::new({
        let q = q.clone();
        move || {
            for i in 0..ITEMS {
                q.put((1, i)).expect("put");
                if i % 1000 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            q.put((2, 0)).expect("put"); // done
        }
    });
    victim.start()?;
    survivor.start()?;
    let (mut from_victim, mut from_survivor, mut in_order, mut killed) = (0u64, 0u64, true, false);
    loop {
        match q.get_timeout(Duration::from_secs(10))? {
            (0, _) => from_victim += 1,
            (1, i) => {
                in_order &= i == from_survivor;
                from_survivor += 1;
            }
            _ => break,
        }
        if !killed && from_victim >= 1000 {
            victim.kill()?; // wherever it is: quite likely inside put()
            killed = true;
        }
    }
    victim.join()?;
    survivor.join()?;
    while let Ok((0, _)) = q.try_get() {
        from_victim += 1;
    }
    println!(
        "   victim (exitcode {:?}): {} puts completed by its own count, {from_victim} received",
        victim.exitcode(),
        sent_by_victim.load()
    );
    println!("   (a put cut short by the kill is lost or delivered whole, never half)");
    println!("   survivor: {from_survivor} of {ITEMS} received, in order: {in_order}");
    q.put((3, 0))?;
    println!("   the queue still works: {:?} put and got back", q.get_timeout(Duration::from_secs(1))?);
    Ok(())
}

fn pipes() -> Res {
    section("Pipe: ping-pong between two processes");
    let (here, there) = Pipe::new::<u64>(true)?;
    let echo = Process::new(move || {
        loop {
            match there.recv() {
                Ok(n) => there.send(&(n + 1)).expect("send"),
                Err(Error::Eof) => shmproc::exit(0), // the parent closed its end
                Err(_) => shmproc::exit(1),
            }
        }
    });
    echo.start()?;
    let rounds = 5_000u64;
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        here.send(&n)?;
        n = here.recv_timeout(Duration::from_secs(10))?;
    }
    let took = t.elapsed();
    println!("   {rounds} round trips, counter now {n}: {:?} per round trip", took / rounds as u32);
    here.close();
    echo.join()?;
    println!("   we closed our end: the echo process saw EOF and exited with {:?}", echo.exitcode());

    section("Pipe: EOF when the writer dies");
    let (reader, writer) = Pipe::new::<String>(false)?;
    let doomed = Process::new(move || {
        writer.send(&"last words".to_string()).expect("send");
        std::thread::sleep(Duration::from_secs(60)); // killed here
    });
    doomed.start()?;
    println!("   received: {:?}", reader.recv_timeout(Duration::from_secs(10))?);
    doomed.kill()?;
    doomed.join()?;
    let t = Instant::now();
    match reader.recv_timeout(Duration::from_secs(10)) {
        Err(Error::Eof) => println!("   writer killed: the next recv() is EOF after {:?}, not a hang", t.elapsed()),
        other => println!("   unexpected: {other:?}"),
    }

    section("wait(): whichever of several connections is ready first");
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (i, ms) in [(0u32, 60u64), (1, 20), (2, 40)] {
        let (r, w) = Pipe::new::<u32>(false)?;
        let p = Process::new(move || {
            std::thread::sleep(Duration::from_millis(ms));
            w.send(&i).expect("send");
        });
        p.start()?;
        readers.push(r);
        senders.push(p);
    }
    let mut pending: Vec<usize> = (0..readers.len()).collect();
    let mut order = Vec::new();
    while !pending.is_empty() {
        let objects: Vec<&dyn Waitable> = pending.iter().map(|&i| &readers[i] as &dyn Waitable).collect();
        let ready = wait(&objects, Some(Duration::from_secs(10)));
        if ready.is_empty() {
            println!("   unexpected: nothing ready within 10 s");
            break;
        }
        for &k in ready.iter().rev() {
            let i = pending.remove(k);
            order.push(readers[i].recv_timeout(Duration::from_secs(1))?);
        }
    }
    for p in &senders {
        p.join()?;
    }
    println!("   senders sleeping 60, 20 and 40 ms; messages arrived in the order {order:?}");
    Ok(())
}

fn main() -> Res {
    println!("shmproc tour: Python's multiprocessing, in shared memory (pid {})", std::process::id());
    processes()?;
    values_and_arrays()?;
    robust_locks()?;
    synchronisation()?;
    queues()?;
    pipes()?;
    named_objects()?;
    println!("\ntour complete");
    Ok(())
}
