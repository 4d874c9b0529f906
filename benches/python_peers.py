#!/usr/bin/env python3
"""Python 3 multiprocessing, measured for the same things as shmproc's criterion benches.

Writes $CARGO_TARGET_DIR/python-peers.json (default: target/python-peers.json next to Cargo.toml)
as {"case": ns_per_op, ...} plus a "_meta" entry, and prints it. `benches/compare.py` reads it.

Every case uses the "fork" start method (shmproc's), reports the median of a few repeats, and
bounds every wait: a child that does not finish within CHILD_TIMEOUT seconds is killed and the
case is recorded as failed. Total runtime is kept under a minute on a 2-core machine.

Usage: python3 benches/python_peers.py [--quick]
"""

import json
import os
import statistics
import sys
import time
from multiprocessing import shared_memory

import multiprocessing as mp

CHILD_TIMEOUT = 30.0
REPEATS = 3
QUICK = "--quick" in sys.argv
SCALE = 0.2 if QUICK else 1.0

ctx = mp.get_context("fork")


def n_of(n):
    return max(10, int(n * SCALE))


def median_ns_per_op(run, n):
    """Runs `run(n)` (returning elapsed seconds) REPEATS times; median ns per op."""
    return statistics.median(run(n) for _ in range(REPEATS)) / n * 1e9


def start_child(target, *args):
    p = ctx.Process(target=target, args=args, daemon=True)
    p.start()
    return p


def join_child(p, what):
    p.join(CHILD_TIMEOUT)
    if p.is_alive():
        p.kill()
        p.join()
        raise RuntimeError(f"{what}: child did not finish within {CHILD_TIMEOUT} s (killed)")
    if p.exitcode != 0:
        raise RuntimeError(f"{what}: child exit code {p.exitcode}")


# --- Locks -----------------------------------------------------------------------------------


def lock_uncontended(n):
    lock = ctx.Lock()
    acquire, release = lock.acquire, lock.release
    t = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return time.perf_counter() - t


def semaphore_uncontended(n):
    sem = ctx.Semaphore(1)
    acquire, release = sem.acquire, sem.release
    t = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return time.perf_counter() - t


def _increment(v, n, ready):
    ready.set()
    lock = v.get_lock()
    for _ in range(n):
        with lock:
            v.value += 1


def value_increment_2proc(n):
    """n increments in all (half per process), like lock_contended_2proc: time per increment."""
    v = ctx.Value("q", 0)
    ready = ctx.Event()
    half = n // 2
    p = start_child(_increment, v, n - half, ready)
    if not ready.wait(CHILD_TIMEOUT):
        raise RuntimeError("value_increment_2proc: child never started")
    t = time.perf_counter()
    lock = v.get_lock()
    for _ in range(half):
        with lock:
            v.value += 1
    join_child(p, "value_increment_2proc")
    elapsed = time.perf_counter() - t
    if v.value != n:
        raise RuntimeError(f"value_increment_2proc: lost increments ({v.value} != {n})")
    return elapsed


def _nothing():
    pass


def process_start_join(n):
    t = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=_nothing)
        p.start()
        join_child(p, "process_start_join")
    return time.perf_counter() - t


def shared_memory_create_attach_unlink(n):
    name = f"shmproc-py-peer-{os.getpid()}"
    t = time.perf_counter()
    for _ in range(n):
        a = shared_memory.SharedMemory(name=name, create=True, size=4096)
        b = shared_memory.SharedMemory(name=name)
        b.close()
        a.close()
        a.unlink()
    return time.perf_counter() - t


# --- Queues and pipes ------------------------------------------------------------------------

MSG = b"\x00" * 8


def _produce(q, n):
    put = q.put
    for _ in range(n):
        put(MSG)


def queue_1p1c(n):
    q = ctx.Queue()
    p = start_child(_produce, q, n)
    get = q.get
    t = time.perf_counter()
    for _ in range(n):
        get(timeout=CHILD_TIMEOUT)
    elapsed = time.perf_counter() - t
    join_child(p, "queue_1p1c")
    return elapsed


def _echo(conn, n):
    recv, send = conn.recv_bytes, conn.send_bytes
    for _ in range(n):
        send(recv())


def pipe_round_trip_2proc(n):
    a, b = ctx.Pipe()
    p = start_child(_echo, b, n)
    send, recv, poll = a.send_bytes, a.recv_bytes, a.poll
    a.send_bytes(MSG)  # one round trip to be sure the child runs
    if not poll(CHILD_TIMEOUT):
        raise RuntimeError("pipe_round_trip_2proc: child never answered")
    recv()
    t = time.perf_counter()
    for _ in range(n - 1):
        send(MSG)
        recv()
    elapsed = time.perf_counter() - t
    join_child(p, "pipe_round_trip_2proc")
    return elapsed * n / (n - 1)


def _event_pong(ping, pong, n):
    for _ in range(n):
        if not ping.wait(CHILD_TIMEOUT):
            raise RuntimeError("event pong: no ping")
        ping.clear()
        pong.set()


def event_wake_round_trip_2proc(n):
    ping, pong = ctx.Event(), ctx.Event()
    p = start_child(_event_pong, ping, pong, n)
    t = time.perf_counter()
    for _ in range(n):
        ping.set()
        if not pong.wait(CHILD_TIMEOUT):
            raise RuntimeError("event_wake_round_trip_2proc: no pong")
        pong.clear()
    elapsed = time.perf_counter() - t
    join_child(p, "event_wake_round_trip_2proc")
    return elapsed


def _barrier_cycles(b, n):
    for _ in range(n):
        b.wait(CHILD_TIMEOUT)


def barrier_cycle_2proc(n):
    b = ctx.Barrier(2)
    p = start_child(_barrier_cycles, b, n)
    t = time.perf_counter()
    for _ in range(n):
        b.wait(CHILD_TIMEOUT)
    elapsed = time.perf_counter() - t
    join_child(p, "barrier_cycle_2proc")
    return elapsed


# name -> (function, ops per repeat)
CASES = {
    "lock_uncontended": (lock_uncontended, 300_000),
    "semaphore_uncontended": (semaphore_uncontended, 300_000),
    "value_increment_2proc": (value_increment_2proc, 100_000),
    "process_start_join": (process_start_join, 200),
    "shared_memory_create_attach_unlink": (shared_memory_create_attach_unlink, 5_000),
    "queue_1p1c": (queue_1p1c, 100_000),
    "pipe_round_trip_2proc": (pipe_round_trip_2proc, 10_000),
    "event_wake_round_trip_2proc": (event_wake_round_trip_2proc, 3_000),
    "barrier_cycle_2proc": (barrier_cycle_2proc, 2_000),
}


def target_dir():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target")


def main():
    started = time.perf_counter()
    results = {}
    failures = {}
    for name, (fn, n) in CASES.items():
        t0 = time.perf_counter()
        try:
            results[name] = round(median_ns_per_op(fn, n_of(n)), 1)
        except Exception as e:  # a failing case must not lose the others
            failures[name] = f"{type(e).__name__}: {e}"
        print(f"  {name}: {results.get(name, 'FAILED')} ns/op ({time.perf_counter() - t0:.1f} s)",
              file=sys.stderr)
    results["_meta"] = {
        "python": sys.version.split()[0],
        "start_method": "fork",
        "repeats": REPEATS,
        "quick": QUICK,
        "seconds": round(time.perf_counter() - started, 1),
        "failures": failures,
    }
    out = os.path.join(target_dir(), "python-peers.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
