//! Named objects attached by processes that share nothing with their creator but the name: the
//! test binary re-runs itself (`current_exe()`) with `SHMPROC_ROLE` selecting the child's part.

mod common;

use std::process::Command;
use std::time::Duration;

use shmproc::{Array, Lock, Mutex, RawValue, SharedMemory, Value};

/// Runs this test binary again as an independent process playing `role` on `name`.
fn run_role(test: &str, role: &str, name: &str) -> std::process::ExitStatus {
    let exe = std::env::current_exe().expect("current_exe");
    Command::new(exe)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env("SHMPROC_ROLE", role)
        .env("SHMPROC_NAME", name)
        .status()
        .expect("re-run the test binary")
}

/// In a re-run child: the role and name it was given.
fn role() -> Option<(String, String)> {
    Some((std::env::var("SHMPROC_ROLE").ok()?, std::env::var("SHMPROC_NAME").ok()?))
}

#[test]
fn independent_process_attaches_by_name() {
    if let Some((role, name)) = role() {
        // The child: it did not create anything and inherited nothing.
        match role.as_str() {
            "value" => {
                let v = Value::<u64>::open(&name).expect("open value");
                for _ in 0..1000 {
                    *v.lock().expect("lock") += 1;
                }
                let a = Array::<f64>::open(&format!("{name}-arr")).expect("open array");
                a.set(2, 2.5).expect("set");
                let shm = SharedMemory::open(&format!("{name}-shm")).expect("open shm");
                shm.write_at(0, b"child").expect("write");
                let r = RawValue::<i32>::open(&format!("{name}-raw")).expect("open raw");
                r.fetch_add(5);
                assert!(matches!(Value::<u32>::open(&name), Err(shmproc::Error::WrongType { .. })));
                assert!(matches!(Mutex::<u64>::open(&name), Err(shmproc::Error::WrongKind { .. })));
            }
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let _dog = common::Watchdog::new(Duration::from_secs(120));
    let name = common::unique_name("named");
    let v = Value::create(&name, 1u64).expect("create value");
    let a = Array::<f64>::create(&format!("{name}-arr"), 4).expect("create array");
    let shm = SharedMemory::create(&format!("{name}-shm"), 32).expect("create shm");
    let r = RawValue::create(&format!("{name}-raw"), 10i32).expect("create raw");
    let status = run_role("independent_process_attaches_by_name", "value", &name);
    assert!(status.success(), "the independent process failed: {status}");
    assert_eq!(v.get().expect("get"), 1001);
    assert_eq!(a.to_vec().expect("to_vec"), vec![0.0, 0.0, 2.5, 0.0]);
    let mut buf = [0u8; 5];
    shm.read_at(0, &mut buf).expect("read");
    assert_eq!(&buf, b"child");
    assert_eq!(r.load(), 15);
    v.unlink().expect("unlink");
    a.unlink().expect("unlink");
    shm.unlink().expect("unlink");
    r.unlink().expect("unlink");
    assert!(!common::shm_exists(&name));
}

#[test]
fn independent_process_killed_holding_a_named_lock() {
    if let Some((role, name)) = role() {
        if role == "hold" {
            let lock = Lock::open(&name).expect("open lock");
            let flag = RawValue::<u32>::open(&format!("{name}-flag")).expect("open flag");
            let _g = lock.lock().expect("lock");
            flag.store(1);
            common::park_forever();
        }
        return;
    }
    let _dog = common::Watchdog::new(Duration::from_secs(120));
    let name = common::unique_name("named-lock");
    let lock = Lock::create(&name, ()).expect("create lock");
    let flag = RawValue::create(&format!("{name}-flag"), 0u32).expect("create flag");
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args(["independent_process_killed_holding_a_named_lock", "--exact", "--test-threads=1"])
        .env("SHMPROC_ROLE", "hold")
        .env("SHMPROC_NAME", &name)
        .spawn()
        .expect("spawn");
    // Killed and reaped however this test ends: a failed assert must not orphan a holder that
    // parks for ever (the watchdog does not see a child started with Command).
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(child);
    assert!(common::wait_for(Duration::from_secs(60), || flag.load() == 1), "the holder never took the lock");
    assert!(matches!(lock.try_lock(), Err(shmproc::LockError::WouldBlock)));
    child.0.kill().expect("kill -9");
    child.0.wait().expect("wait");
    match lock.lock_timeout(Duration::from_secs(10)) {
        Err(shmproc::LockError::Poisoned(_)) => {}
        other => panic!("expected poison after the holder's death, got {:?}", other.map(drop)),
    }
    lock.clear_poison();
    drop(lock.lock().expect("usable again"));
    lock.unlink().expect("unlink");
    flag.unlink().expect("unlink");
}
