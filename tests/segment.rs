//! Segments: every error a name or a header can produce, sweep, and SharedMemory.
//!
//! Damaged segments are crafted by writing bytes into `/dev/shm/<name>` with std::fs, at the
//! offsets `src/layout.rs` pins for `SegmentHeader`.
mod common;

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::time::{Duration, Instant};

use shmproc::{Array, Error, Kind, Mutex, Process, RLock, RawArray, RawValue, SharedMemory, Value};

const WATCHDOG: Duration = Duration::from_secs(60);
const JOIN: Duration = Duration::from_secs(30);

// Header field offsets (src/layout.rs, pinned there by const assertions).
const OFF_MAGIC: u64 = 0;
const OFF_VERSION: u64 = 8;
const OFF_KIND: u64 = 12;
const OFF_PAYLOAD_OFFSET: u64 = 32;
const OFF_PAYLOAD_LEN: u64 = 40;
const OFF_PARAM: u64 = 48;
const OFF_STATE: u64 = 56;

/// Removes the names it holds from /dev/shm when dropped, so a failing test leaves nothing behind.
struct Cleanup(Vec<String>);

impl Cleanup {
    fn new() -> Cleanup {
        Cleanup(Vec::new())
    }

    fn name(&mut self, tag: &str) -> String {
        let n = common::unique_name(tag);
        self.0.push(n.clone());
        n
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(shm_path(n));
        }
    }
}

fn shm_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(name)
}

/// Overwrites `bytes` at `offset` of `/dev/shm/<name>`.
fn poke(name: &str, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(shm_path(name)).expect("open segment file");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(bytes).expect("write");
}

fn file_len(name: &str) -> u64 {
    std::fs::metadata(shm_path(name)).expect("metadata").len()
}

/// Creates `/dev/shm/<name>` by hand (mode 0600) holding `bytes`.
fn craft(name: &str, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(shm_path(name))
        .expect("create crafted file");
    f.write_all(bytes).expect("write");
}

// ---- invalid names ------------------------------------------------------------------------

/// Every constructor and opener refuses `name` with `InvalidName`, and nothing is created.
fn assert_invalid_name(name: &str) {
    let check = |what: &str, r: Result<(), Error>| match r {
        Err(Error::InvalidName { name: n, .. }) => assert_eq!(n, name, "{what}"),
        other => panic!("{what}({name:?}): expected InvalidName, got {other:?}"),
    };
    check("Value::create", Value::create(name, 0u64).map(drop));
    check("Value::open", Value::<u64>::open(name).map(drop));
    check("Mutex::create", Mutex::create(name, 0u32).map(drop));
    check("Mutex::open", Mutex::<u32>::open(name).map(drop));
    check("Array::create", Array::<u8>::create(name, 4).map(drop));
    check("RawValue::create", RawValue::create(name, 0u32).map(drop));
    check("SharedMemory::create", SharedMemory::create(name, 16).map(drop));
    check("SharedMemory::open", SharedMemory::open(name).map(drop));
}

#[test]
fn invalid_name_empty() {
    assert_invalid_name("");
}

#[test]
fn invalid_name_with_slash() {
    assert_invalid_name("a/b");
    assert_invalid_name("/leading");
}

#[test]
fn invalid_name_251_bytes() {
    assert_eq!(shmproc::MAX_NAME_LEN, 250);
    assert_invalid_name(&"x".repeat(251));
}

#[test]
fn name_of_250_bytes_is_accepted() {
    let mut c = Cleanup::new();
    let base = c.name("max");
    let name = format!("{base}{}", "y".repeat(250 - base.len()));
    c.0.push(name.clone());
    assert_eq!(name.len(), 250);
    let v = Value::create(&name, 9u64).expect("a 250-byte name is valid");
    assert_eq!(Value::<u64>::open(&name).expect("open").get().expect("get"), 9);
    v.unlink().expect("unlink");
}

#[test]
fn invalid_name_dot() {
    assert_invalid_name(".");
}

#[test]
fn invalid_name_dotdot() {
    assert_invalid_name("..");
}

#[test]
fn invalid_name_with_nul() {
    assert_invalid_name("a\0b");
}

// ---- create / open ------------------------------------------------------------------------

#[test]
fn create_existing_name_is_already_exists() {
    let mut c = Cleanup::new();
    let name = c.name("exists");
    let v = Value::create(&name, 1u64).expect("create");
    match Value::create(&name, 2u64) {
        Err(Error::AlreadyExists { name: n }) => assert_eq!(n, name),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // Another kind on the same name is refused the same way, and the first is untouched.
    assert!(matches!(SharedMemory::create(&name, 8), Err(Error::AlreadyExists { .. })));
    assert_eq!(v.get().expect("get"), 1);
    v.unlink().expect("unlink");
}

#[test]
fn open_missing_name_is_not_found() {
    let name = common::unique_name("missing");
    match Value::<u64>::open(&name) {
        Err(Error::NotFound { name: n }) => assert_eq!(n, name),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(SharedMemory::open(&name), Err(Error::NotFound { .. })));
    assert!(matches!(Array::<u8>::open(&name), Err(Error::NotFound { .. })));
    assert!(!common::shm_exists(&name), "open never creates");
}

#[test]
fn named_segments_are_mode_0600() {
    let mut c = Cleanup::new();
    let name = c.name("mode");
    let v = Value::create(&name, 0u8).expect("create");
    let mode = std::fs::metadata(shm_path(&name)).expect("metadata").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    v.unlink().expect("unlink");
}

#[test]
fn wrong_kind_value_opened_as_other_kinds() {
    let mut c = Cleanup::new();
    let name = c.name("kind");
    let v = Value::create(&name, 5u64).expect("create");
    let expect_wrong_kind = |what: &str, r: Result<(), Error>, expected: &str| match r {
        Err(Error::WrongKind { name: n, expected: e, found }) => {
            assert_eq!(n, name, "{what}");
            assert_eq!(e, expected, "{what}");
            assert_eq!(found, Kind::Value.name(), "{what}");
        }
        other => panic!("{what}: expected WrongKind, got {other:?}"),
    };
    expect_wrong_kind("Mutex", Mutex::<u64>::open(&name).map(drop), Kind::Mutex.name());
    expect_wrong_kind("Array", Array::<u64>::open(&name).map(drop), Kind::Array.name());
    expect_wrong_kind("SharedMemory", SharedMemory::open(&name).map(drop), Kind::SharedMemory.name());
    expect_wrong_kind("RawValue", RawValue::<u64>::open(&name).map(drop), Kind::RawValue.name());
    expect_wrong_kind("RawArray", RawArray::<u64>::open(&name).map(drop), Kind::RawArray.name());
    expect_wrong_kind("RLock", RLock::open(&name).map(drop), Kind::RLock.name());
    assert_eq!(v.get().expect("get"), 5, "failed opens leave it alone");
    v.unlink().expect("unlink");
}

#[test]
fn wrong_kind_unknown_kind_number() {
    let mut c = Cleanup::new();
    let name = c.name("kind99");
    let v = Value::create(&name, 5u64).expect("create");
    poke(&name, OFF_KIND, &999u32.to_le_bytes());
    match Value::<u64>::open(&name) {
        Err(Error::WrongKind { found, .. }) => assert!(found.contains("999"), "{found}"),
        other => panic!("expected WrongKind, got {other:?}"),
    }
    v.unlink().expect("unlink");
}

#[test]
fn wrong_type_value_u64_opened_as_u32_or_i64() {
    let mut c = Cleanup::new();
    let name = c.name("type");
    let v = Value::create(&name, 5u64).expect("create");
    match Value::<u32>::open(&name) {
        Err(Error::WrongType { name: n, expected }) => {
            assert_eq!(n, name);
            assert_eq!(expected, "u32");
        }
        other => panic!("u32: expected WrongType, got {other:?}"),
    }
    // Same size and alignment, another type: still refused.
    assert!(matches!(Value::<i64>::open(&name), Err(Error::WrongType { .. })));
    assert!(matches!(Value::<f64>::open(&name), Err(Error::WrongType { .. })));
    assert_eq!(Value::<u64>::open(&name).expect("the right type opens").get().expect("get"), 5);
    v.unlink().expect("unlink");
}

#[test]
fn wrong_type_array_element() {
    let mut c = Cleanup::new();
    let name = c.name("atype");
    let a = Array::<u32>::create(&name, 4).expect("create");
    assert!(matches!(Array::<i32>::open(&name), Err(Error::WrongType { .. })));
    assert!(matches!(Array::<u16>::open(&name), Err(Error::WrongType { .. })));
    a.unlink().expect("unlink");
}

#[test]
fn wrong_version() {
    let mut c = Cleanup::new();
    let name = c.name("version");
    let v = Value::create(&name, 5u64).expect("create");
    poke(&name, OFF_VERSION, &99u32.to_le_bytes());
    match Value::<u64>::open(&name) {
        Err(Error::WrongVersion { name: n, found, expected }) => {
            assert_eq!(n, name);
            assert_eq!(found, 99);
            assert_eq!(expected, 3, "the layout version this build writes (src/layout.rs)");
        }
        other => panic!("expected WrongVersion, got {other:?}"),
    }
    v.unlink().expect("unlink");
}

#[test]
fn corrupt_header_bad_magic() {
    let mut c = Cleanup::new();
    let name = c.name("magic");
    let v = Value::create(&name, 5u64).expect("create");
    poke(&name, OFF_MAGIC, b"NOTSHMP!");
    match Value::<u64>::open(&name) {
        Err(Error::CorruptHeader { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected CorruptHeader, got {other:?}"),
    }
    v.unlink().expect("unlink");
}

#[test]
fn corrupt_header_foreign_file() {
    let mut c = Cleanup::new();
    let name = c.name("foreign");
    let mut bytes = vec![0u8; 4096];
    bytes[..13].copy_from_slice(b"hello, world!");
    craft(&name, &bytes);
    assert!(matches!(Value::<u64>::open(&name), Err(Error::CorruptHeader { .. })));
    assert!(matches!(SharedMemory::open(&name), Err(Error::CorruptHeader { .. })));
}

#[test]
fn corrupt_header_payload_outside_segment() {
    let mut c = Cleanup::new();
    let name = c.name("payload");
    let v = Value::create(&name, 5u64).expect("create");
    poke(&name, OFF_PAYLOAD_OFFSET, &(1u64 << 40).to_le_bytes());
    assert!(matches!(Value::<u64>::open(&name), Err(Error::CorruptHeader { .. })));
    v.unlink().expect("unlink");
}

#[test]
fn size_mismatch_file_longer_than_header_says() {
    let mut c = Cleanup::new();
    let name = c.name("size");
    let v = Value::create(&name, 5u64).expect("create");
    let len = file_len(&name);
    // Grow only: shrinking would cut our own live mapping.
    std::fs::OpenOptions::new().write(true).open(shm_path(&name)).expect("open").set_len(len + 4096).expect("grow");
    match Value::<u64>::open(&name) {
        Err(Error::SizeMismatch { name: n, expected, found }) => {
            assert_eq!(n, name);
            assert_eq!(expected as u64, len);
            assert_eq!(found as u64, len + 4096);
        }
        other => panic!("expected SizeMismatch, got {other:?}"),
    }
    v.unlink().expect("unlink");
}

#[test]
fn size_mismatch_payload_len_for_the_type() {
    let mut c = Cleanup::new();
    let name = c.name("plen");
    let v = Value::create(&name, 5u64).expect("create");
    poke(&name, OFF_PAYLOAD_LEN, &16u64.to_le_bytes());
    assert!(matches!(Value::<u64>::open(&name), Err(Error::SizeMismatch { .. })));
    v.unlink().expect("unlink");
}

#[test]
fn size_mismatch_array_length_param() {
    let mut c = Cleanup::new();
    let name = c.name("param");
    let a = Array::<u64>::create(&name, 4).expect("create");
    poke(&name, OFF_PARAM, &5u64.to_le_bytes());
    assert!(matches!(Array::<u64>::open(&name), Err(Error::SizeMismatch { .. })));
    let r = RawArray::<u64>::create(&c.name("rparam"), 4).expect("create");
    poke(r.name().expect("named"), OFF_PARAM, &1000u64.to_le_bytes());
    assert!(matches!(RawArray::<u64>::open(r.name().expect("named")), Err(Error::SizeMismatch { .. })));
    a.unlink().expect("unlink");
    r.unlink().expect("unlink");
}

#[test]
fn not_ready_when_the_creator_never_published() {
    let _w = common::Watchdog::new(WATCHDOG);
    let mut c = Cleanup::new();
    // (a) a full header whose state never became READY (the creator died initialising it),
    let unpublished = c.name("unpublished");
    let v = Value::create(&unpublished, 5u64).expect("create");
    poke(&unpublished, OFF_STATE, &0u32.to_le_bytes());
    // (b) a creator that died before sizing the file, (c) one that died before writing the magic.
    let empty = c.name("empty");
    craft(&empty, &[]);
    let zeroed = c.name("zeroed");
    craft(&zeroed, &[0u8; 4096]);
    // The default open timeout is 2 s: wait for the three at once.
    let handles: Vec<_> = [unpublished.clone(), empty, zeroed]
        .into_iter()
        .map(|name| {
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let r = Value::<u64>::open(&name).map(drop);
                (name, r, t0.elapsed())
            })
        })
        .collect();
    for h in handles {
        let (name, r, took) = h.join().expect("opener thread");
        match r {
            Err(Error::NotReady { name: n, waited }) => {
                assert_eq!(n, name);
                assert!(waited >= Duration::from_secs(2), "{waited:?}");
            }
            other => panic!("{name}: expected NotReady, got {other:?}"),
        }
        assert!(took >= Duration::from_secs(2), "{name}: gave up after {took:?}, before the 2 s open timeout");
    }
    v.unlink().expect("unlink");
}

#[test]
fn permission_denied_for_another_user() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let mut c = Cleanup::new();
    let name = c.name("perm");
    let v = Value::create(&name, 5u64).expect("create");
    let p = Process::new({
        let name = name.clone();
        move || {
            if become_nobody().is_err() {
                shmproc::exit(2);
            }
            match Value::<u64>::open(&name) {
                Err(Error::PermissionDenied { name: n }) if n == name => shmproc::exit(0),
                Err(Error::PermissionDenied { .. }) => shmproc::exit(3),
                Ok(_) => shmproc::exit(4),
                Err(_) => shmproc::exit(5),
            }
        }
    });
    p.start().expect("start");
    assert!(p.join_timeout(JOIN).expect("join"), "child did not end");
    assert_eq!(p.exitcode(), Some(0), "2: setuid failed, 4: opened anyway, 3/5: wrong error");
    v.unlink().expect("unlink");
}

/// Drops root for `nobody` (uid/gid 65534) in this (forked, single-threaded) child.
#[allow(unsafe_code)]
fn become_nobody() -> std::io::Result<()> {
    // SAFETY: plain syscall with an integer argument; the child has a single thread.
    if unsafe { libc::setgid(65534) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(65534) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above; a query.
    if unsafe { libc::geteuid() } != 65534 {
        return Err(std::io::Error::other("still root"));
    }
    Ok(())
}

#[test]
fn no_space_anonymous_1_tib() {
    match SharedMemory::new(1 << 40) {
        Err(Error::NoSpace { len, .. }) => assert!(len >= 1 << 40),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(matches!(RawArray::<u64>::new(1 << 37), Err(Error::NoSpace { .. })));
}

#[test]
fn no_space_named_1_tib_leaves_no_name() {
    let mut c = Cleanup::new();
    let name = c.name("huge");
    match SharedMemory::create(&name, 1 << 40) {
        Err(Error::NoSpace { len, .. }) => assert!(len >= 1 << 40),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(!common::shm_exists(&name), "a failed create must not leave its name behind");
    assert!(matches!(Array::<u8>::create(&name, 1 << 40), Err(Error::NoSpace { .. })));
    assert!(!common::shm_exists(&name));
    // The name is free for a normal create afterwards.
    let s = SharedMemory::create(&name, 64).expect("create after a failed create");
    s.unlink().expect("unlink");
}

#[test]
fn too_large_array_length_is_invalid_argument() {
    assert!(matches!(Array::<u64>::new(usize::MAX / 2), Err(Error::InvalidArgument(_))));
    assert!(matches!(RawArray::<u64>::new(usize::MAX / 2), Err(Error::InvalidArgument(_))));
}

// ---- sweep --------------------------------------------------------------------------------

#[test]
fn sweep_removes_dead_users_names_only() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let mut c = Cleanup::new();
    let prefix = format!("{}-", c.name("sweep"));
    let dead = format!("{prefix}dead");
    let held = format!("{prefix}held");
    let creating = format!("{prefix}creating");
    c.0.extend([dead.clone(), held.clone(), creating.clone()]);

    // A child creates a name and exits without unlinking it.
    let p = Process::new({
        let dead = dead.clone();
        move || match Value::create(&dead, 1u32) {
            Ok(_) => shmproc::exit(0),
            Err(_) => shmproc::exit(2),
        }
    });
    p.start().expect("start");
    assert!(p.join_timeout(JOIN).expect("join"), "child did not end");
    assert_eq!(p.exitcode(), Some(0));
    assert!(common::shm_exists(&dead), "the child's name outlives it");

    // This process holds one open, and one is a creator's fresh, still empty file.
    let mine = Value::create(&held, 2u32).expect("create");
    craft(&creating, &[]);

    let mut removed = shmproc::sweep(&prefix).expect("sweep");
    removed.sort();
    assert_eq!(removed, vec![dead.clone()]);
    assert!(!common::shm_exists(&dead));
    assert!(common::shm_exists(&held), "a name in use is kept");
    assert!(common::shm_exists(&creating), "a young name without a header is kept");
    assert_eq!(mine.get().expect("get"), 2);

    // Once the last user is gone it is swept too.
    drop(mine);
    assert_eq!(shmproc::sweep(&prefix).expect("sweep"), vec![held.clone()]);
    assert!(!common::shm_exists(&held));
    std::fs::remove_file(shm_path(&creating)).expect("remove crafted file");
    assert_eq!(shmproc::sweep(&prefix).expect("sweep"), Vec::<String>::new());
}

#[test]
fn sweep_keeps_a_name_held_by_another_live_process() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let mut c = Cleanup::new();
    let prefix = format!("{}-", c.name("sweep2"));
    let name = format!("{prefix}child");
    c.0.push(name.clone());
    let ready = RawValue::new(0u32).expect("raw value");
    let p = Process::new({
        let (name, ready) = (name.clone(), ready.clone());
        move || {
            let _v = Value::create(&name, 1u32).expect("create");
            ready.store(1);
            common::park_forever()
        }
    });
    p.start().expect("start");
    assert!(common::wait_for(JOIN, || ready.load() == 1), "child never created its name");
    assert_eq!(shmproc::sweep(&prefix).expect("sweep"), Vec::<String>::new(), "the child still uses it");
    assert!(common::shm_exists(&name));
    p.kill().expect("kill");
    assert!(p.join_timeout(JOIN).expect("join"));
    assert_eq!(shmproc::sweep(&prefix).expect("sweep"), vec![name.clone()], "its user died");
    assert!(!common::shm_exists(&name));
}

// ---- SharedMemory -------------------------------------------------------------------------

#[test]
fn shared_memory_create_open_read_write_len_unlink() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let mut c = Cleanup::new();
    let name = c.name("shm");
    let a = SharedMemory::create(&name, 100).expect("create");
    assert_eq!(a.len(), 100, "exactly the requested size");
    assert!(!a.is_empty());
    assert_eq!(a.name(), Some(name.as_str()));
    let mut buf = [0xffu8; 100];
    a.read_at(0, &mut buf).expect("read");
    assert!(buf.iter().all(|b| *b == 0), "zero-filled");
    a.write_at(10, b"hello").expect("write");

    let b = SharedMemory::open(&name).expect("open");
    assert_eq!(b.len(), 100, "open takes the size from the segment");
    let mut five = [0u8; 5];
    b.read_at(10, &mut five).expect("read");
    assert_eq!(&five, b"hello");

    // Another process opens it by name and writes; we see it.
    let p = Process::new({
        let name = name.clone();
        move || {
            let s = SharedMemory::open(&name).expect("open in child");
            s.write_at(95, b"world").expect("write in child");
        }
    });
    p.start().expect("start");
    assert!(p.join_timeout(JOIN).expect("join"));
    assert_eq!(p.exitcode(), Some(0));
    a.read_at(95, &mut five).expect("read");
    assert_eq!(&five, b"world");

    a.unlink().expect("first unlink");
    assert!(!common::shm_exists(&name));
    match b.unlink() {
        Err(Error::NotFound { name: n }) => assert_eq!(n, name),
        other => panic!("second unlink: expected NotFound, got {other:?}"),
    }
    assert!(matches!(SharedMemory::open(&name), Err(Error::NotFound { .. })));
    // Mappings outlive the name.
    b.write_at(0, b"x").expect("write after unlink");
    let mut one = [0u8; 1];
    a.read_at(0, &mut one).expect("read after unlink");
    assert_eq!(&one, b"x");
}

#[test]
fn shared_memory_out_of_range_access() {
    let s = SharedMemory::new(8).expect("new");
    let mut buf = [0u8; 4];
    assert!(matches!(s.read_at(5, &mut buf), Err(Error::IndexOutOfRange { .. })));
    assert!(matches!(s.write_at(7, b"ab"), Err(Error::IndexOutOfRange { .. })));
    assert!(matches!(s.write_at(usize::MAX, b"a"), Err(Error::IndexOutOfRange { .. })));
    s.write_at(4, b"abcd").expect("the last four bytes");
    s.read_at(8, &mut []).expect("an empty read at the end");
}

#[test]
fn shared_memory_size_0_is_invalid_argument() {
    assert!(matches!(SharedMemory::new(0), Err(Error::InvalidArgument(_))));
    let name = common::unique_name("zero");
    assert!(matches!(SharedMemory::create(&name, 0), Err(Error::InvalidArgument(_))));
    assert!(!common::shm_exists(&name));
}

#[test]
fn shared_memory_anonymous_is_inherited() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(WATCHDOG);
    let s = SharedMemory::new(4096).expect("new");
    assert_eq!(s.name(), None);
    s.unlink().expect("unlink of an anonymous block is a no-op");
    let p = Process::new({
        let s = s.clone();
        move || {
            let mut b = [0u8; 3];
            s.read_at(0, &mut b).expect("read");
            if &b != b"abc" {
                shmproc::exit(2);
            }
            s.write_at(4093, b"xyz").expect("write");
        }
    });
    s.write_at(0, b"abc").expect("write");
    p.start().expect("start");
    assert!(p.join_timeout(JOIN).expect("join"));
    assert_eq!(p.exitcode(), Some(0));
    let mut b = [0u8; 3];
    s.read_at(4093, &mut b).expect("read");
    assert_eq!(&b, b"xyz");
}

#[test]
fn value_unlink_twice_is_not_found() {
    let mut c = Cleanup::new();
    let name = c.name("unlink");
    let v = Value::create(&name, 1i32).expect("create");
    assert_eq!(v.name(), Some(name.as_str()));
    v.unlink().expect("unlink");
    assert!(matches!(v.unlink(), Err(Error::NotFound { .. })));
    assert_eq!(v.get().expect("a handle outlives the name"), 1);
    // The name can be created afresh.
    let w = Value::create(&name, 2i32).expect("create again");
    assert_eq!(w.get().expect("get"), 2);
    assert_eq!(v.get().expect("get"), 1, "the old segment is separate");
    w.unlink().expect("unlink");
}

#[test]
fn sizes_near_usize_max_are_refused_not_wrapped() {
    // The segment adds its header and rounds up to a page: that must not overflow into a small
    // mapping behind a huge length.
    for len in [usize::MAX, usize::MAX - 10, usize::MAX - 4096 * 2] {
        match SharedMemory::new(len) {
            Err(Error::InvalidArgument(_) | Error::NoSpace { .. }) => {}
            other => panic!("SharedMemory::new({len}): expected an error, got {other:?}"),
        }
        match RawArray::<u8>::new(len) {
            Err(Error::InvalidArgument(_) | Error::NoSpace { .. }) => {}
            other => panic!("RawArray::<u8>::new({len}): expected an error, got {other:?}"),
        }
        match Array::<u8>::new(len) {
            Err(Error::InvalidArgument(_) | Error::NoSpace { .. }) => {}
            other => panic!("Array::<u8>::new({len}): expected an error, got {other:?}"),
        }
    }
}

#[test]
fn sweep_skips_names_of_other_users() {
    let mut c = Cleanup::new();
    let prefix = format!("{}-", c.name("sweep3"));
    let name = format!("{prefix}foreign");
    c.0.push(name.clone());
    drop(Value::create(&name, 1u32).expect("create"));
    // Unused, ours in content, but another user's file: not ours to remove.
    std::os::unix::fs::chown(shm_path(&name), Some(65534), Some(65534)).expect("chown");
    assert_eq!(shmproc::sweep(&prefix).expect("sweep"), Vec::<String>::new());
    assert!(common::shm_exists(&name));
}

#[test]
fn open_racing_a_creator_sees_not_found_or_the_whole_initial_value() {
    let _g = common::fork_lock();
    let _w = common::Watchdog::new(Duration::from_secs(120));
    const LEN: usize = 1 << 20; // 8 MiB: a creation wide enough to be caught half-way
    let mut c = Cleanup::new();
    for round in 0..10u64 {
        let name = c.name("race");
        let p = Process::new({
            let name = name.clone();
            move || {
                let init: Vec<u64> = (0..LEN as u64).map(|i| i ^ round).collect();
                if Array::create_from_slice(&name, &init).is_err() {
                    shmproc::exit(2);
                }
            }
        });
        p.start().expect("start");
        let deadline = Instant::now() + JOIN;
        let a = loop {
            match Array::<u64>::open(&name) {
                Ok(a) => break a,
                Err(Error::NotFound { .. }) if Instant::now() < deadline => std::hint::spin_loop(),
                Err(e) => panic!("round {round}: open while the creator works: {e:?}"),
            }
        };
        assert_eq!(a.len(), LEN);
        let v = a.to_vec().expect("to_vec");
        assert!(
            v.iter().enumerate().all(|(i, x)| *x == i as u64 ^ round),
            "round {round}: saw a half-initialised array"
        );
        assert!(p.join_timeout(JOIN).expect("join"));
        assert_eq!(p.exitcode(), Some(0));
        a.unlink().expect("unlink");
    }
}

#[test]
fn a_header_overwritten_after_open_is_not_trusted_again() {
    let mut c = Cleanup::new();
    // A peer (or anyone with write access to /dev/shm) rewrites the payload offset after we
    // attached: our handles keep using the offset validated at open, never an out-of-bounds one.
    let shm = c.name("hdr-shm");
    let a = SharedMemory::create(&shm, 64).expect("create");
    let b = SharedMemory::open(&shm).expect("open");
    let arr = c.name("hdr-array");
    let x = Array::<u64>::create(&arr, 4).expect("create");
    let raw = c.name("hdr-raw");
    let r = RawArray::<u64>::create(&raw, 4).expect("create");
    let v = c.name("hdr-value");
    let val = Value::create(&v, 1u64).expect("create");
    for name in [&shm, &arr, &raw, &v] {
        poke(name, OFF_PAYLOAD_OFFSET, &(1u64 << 40).to_le_bytes());
        poke(name, OFF_PAYLOAD_LEN, &u64::MAX.to_le_bytes());
    }
    a.write_at(60, b"tail").expect("write");
    let mut buf = [0u8; 4];
    b.read_at(60, &mut buf).expect("read");
    assert_eq!(&buf, b"tail");
    assert_eq!(b.len(), 64);
    x.set(3, 9).expect("set");
    assert_eq!(x.to_vec().expect("to_vec"), vec![0, 0, 0, 9]);
    r.store(3, 7).expect("store");
    assert_eq!(r.to_vec(), vec![0, 0, 0, 7]);
    val.set(2).expect("set");
    assert_eq!(val.get().expect("get"), 2);
    // A new attacher refuses the damaged header.
    assert!(matches!(SharedMemory::open(&shm), Err(Error::CorruptHeader { .. })));
    assert!(matches!(Array::<u64>::open(&arr), Err(Error::CorruptHeader { .. })));
    for name in [&shm, &arr, &raw, &v] {
        std::fs::remove_file(shm_path(name)).expect("remove");
    }
}
