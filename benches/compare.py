#!/usr/bin/env python3
"""The compare command: shmproc against its floors and peers, as markdown.

Reads criterion's results (target/criterion/<group>/<bench>/new/estimates.json, mean point
estimate in ns) and target/python-peers.json (from benches/python_peers.py), prints one markdown
table per area and writes BENCHMARKS.md (the tables plus the machine they ran on).

    cargo bench -- --warm-up-time 1 --measurement-time 2
    python3 benches/python_peers.py
    python3 benches/compare.py            # --no-write: print only

Adding a row is one line in ROWS below; adding a target is one line in TARGETS. A row with no
result yet (not benched, or the python script not run) shows as "—"; nothing here crashes on a
missing file.
"""

import datetime
import json
import os
import platform
import shutil
import subprocess
import sys

# ---------------------------------------------------------------------------------------------
# The data table: which row is the floor, a peer, or shmproc, in which group and area.
#
#   (area, group, case, role)
#
# - group/case: criterion's benchmark_group / bench_function names; a case "py:<key>" is the
#   <key> of target/python-peers.json instead.
# - role: "floor" (one per group: every row's ratio is against it), "peer" (shmproc rows are
#   compared with each), "shmproc" (the rows under test), "ref" (shown, no comparisons).
# ---------------------------------------------------------------------------------------------
ROWS = [
    ("Locks", "lock_uncontended", "plain_futex", "floor"),
    ("Locks", "lock_uncontended", "glibc_robust", "peer"),
    ("Locks", "lock_uncontended", "raw_sync", "peer"),
    ("Locks", "lock_uncontended", "std_mutex", "peer"),
    ("Locks", "lock_uncontended", "parking_lot", "peer"),
    ("Locks", "lock_uncontended", "py:lock_uncontended", "peer"),
    ("Locks", "lock_uncontended", "shmproc_mutex", "shmproc"),
    ("Locks", "lock_contended_2proc", "plain_futex", "floor"),
    ("Locks", "lock_contended_2proc", "glibc_robust", "peer"),
    ("Locks", "lock_contended_2proc", "raw_sync", "peer"),
    ("Locks", "lock_contended_2proc", "py:value_increment_2proc", "peer"),
    ("Locks", "lock_contended_2proc", "shmproc_mutex", "shmproc"),
    ("Locks", "lock_contended_2proc", "shmproc_value", "shmproc"),
    ("Processes and segments", "process_start_join", "raw_fork_waitpid", "floor"),
    ("Processes and segments", "process_start_join", "py:process_start_join", "peer"),
    ("Processes and segments", "process_start_join", "shmproc_process", "shmproc"),
    ("Processes and segments", "segment_create_open_unlink", "raw_syscalls", "floor"),
    ("Processes and segments", "segment_create_open_unlink", "py:shared_memory_create_attach_unlink", "peer"),
    ("Processes and segments", "segment_create_open_unlink", "shmproc_shared_memory", "shmproc"),
    ("Queues and pipes", "queue_1p1c", "raw_spsc_ring_2proc", "floor"),
    ("Queues and pipes", "queue_1p1c", "os_pipe_2proc", "peer"),
    ("Queues and pipes", "queue_1p1c", "crossbeam_array_queue_2threads", "peer"),
    ("Queues and pipes", "queue_1p1c", "rtrb_2threads", "peer"),
    ("Queues and pipes", "queue_1p1c", "py:queue_1p1c", "peer"),
    ("Queues and pipes", "queue_1p1c", "local_raw_ring", "ref"),
    ("Queues and pipes", "queue_1p1c", "shmproc_queue_2proc", "shmproc"),
    ("Queues and pipes", "queue_1p1c", "shmproc_queue_typed_2proc", "shmproc"),
    ("Queues and pipes", "queue_2p2c", "crossbeam_array_queue_4threads", "floor"),
    ("Queues and pipes", "queue_2p2c", "shmproc_queue_4proc", "shmproc"),
    ("Queues and pipes", "memcpy", "1MiB", "floor"),
    ("Queues and pipes", "memcpy", "local_1MiB", "ref"),
    ("Queues and pipes", "memcpy", "shmproc_queue_bytes_1MiB", "shmproc"),
    ("Queues and pipes", "queue_wake_rtt", "futex_wake", "floor"),
    ("Queues and pipes", "queue_wake_rtt", "shmproc_get_wake", "shmproc"),
    ("Queues and pipes", "pipe_round_trip_2proc", "pipe2", "floor"),
    ("Queues and pipes", "pipe_round_trip_2proc", "py:pipe_round_trip_2proc", "peer"),
    ("Queues and pipes", "pipe_round_trip_2proc", "local_pipe2", "ref"),
    ("Queues and pipes", "pipe_round_trip_2proc", "shmproc_pipe", "shmproc"),
    ("Synchronisation", "wake_round_trip_2proc", "raw_futex", "floor"),
    ("Synchronisation", "wake_round_trip_2proc", "py:event_wake_round_trip_2proc", "peer"),
    ("Synchronisation", "wake_round_trip_2proc", "shmproc_event", "shmproc"),
    ("Synchronisation", "semaphore_uncontended", "py:semaphore_uncontended", "peer"),
    ("Synchronisation", "semaphore_uncontended", "shmproc_semaphore", "shmproc"),
    ("Synchronisation", "barrier_cycle_2proc", "py:barrier_cycle_2proc", "peer"),
    ("Synchronisation", "barrier_cycle_2proc", "shmproc_barrier", "shmproc"),
    ("Synchronisation", "cache_line_round_trip_2proc", "shared_word", "ref"),
]

# (group, shmproc case, reference case, kind, value)
# kind "time<=": shmproc time / reference time must be <= value.
# kind "thrpt>=": shmproc throughput / reference throughput (= reference time / shmproc time)
#                 must be >= value.
TARGETS = [
    ("lock_uncontended", "shmproc_mutex", "glibc_robust", "time<=", 1.0),
    ("lock_uncontended", "shmproc_mutex", "plain_futex", "time<=", 1.5),
    ("lock_contended_2proc", "shmproc_mutex", "glibc_robust", "time<=", 1.0),
    ("process_start_join", "shmproc_process", "raw_fork_waitpid", "time<=", 1.5),
    ("segment_create_open_unlink", "shmproc_shared_memory", "raw_syscalls", "time<=", 1.3),
    ("wake_round_trip_2proc", "shmproc_event", "raw_futex", "time<=", 1.2),
    ("pipe_round_trip_2proc", "shmproc_pipe", "pipe2", "time<=", 1.0),
    ("queue_1p1c", "shmproc_queue_2proc", "raw_spsc_ring_2proc", "thrpt>=", 0.30),
    ("queue_1p1c", "shmproc_queue_2proc", "py:queue_1p1c", "thrpt>=", 300.0),
    ("queue_2p2c", "shmproc_queue_4proc", "crossbeam_array_queue_4threads", "thrpt>=", 0.5),
    ("memcpy", "shmproc_queue_bytes_1MiB", "1MiB", "thrpt>=", 0.4),
    ("queue_wake_rtt", "shmproc_get_wake", "futex_wake", "time<=", 1.2),
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
CRITERION_DIR = os.path.join(TARGET_DIR, "criterion")
PEERS_JSON = os.path.join(TARGET_DIR, "python-peers.json")
DASH = "—"


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def criterion_result(group, case):
    """(mean ns per iteration, throughput dict or None), or (None, None) when not benched."""
    d = os.path.join(CRITERION_DIR, group, case, "new")
    est = load_json(os.path.join(d, "estimates.json"))
    try:
        ns = float(est["mean"]["point_estimate"])
    except (TypeError, KeyError, ValueError):
        return None, None
    bench = load_json(os.path.join(d, "benchmark.json")) or {}
    return ns, bench.get("throughput")


def fmt_time(ns):
    if ns is None:
        return DASH
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(ns, throughput):
    """'375 M msg/s' or '41.4 GiB/s' from a per-iteration time and criterion's throughput."""
    if ns is None or not throughput:
        return ""
    if "Bytes" in throughput or "BytesDecimal" in throughput:
        n = throughput.get("Bytes") or throughput.get("BytesDecimal")
        return f" ({n / ns * 1e9 / 2**30:.3g} GiB/s)"
    n = throughput.get("Elements")
    if n is None:
        return ""
    rate = n / ns * 1e9
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rate >= scale:
            return f" ({rate / scale:.3g} {unit} op/s)"
    return f" ({rate:.3g} op/s)"


def fmt_ratio(x):
    if x is None:
        return DASH
    return f"{x:.3g}×"


def ratio(a, b):
    return a / b if a is not None and b else None


def label(case):
    return f"Python {case[3:]}" if case.startswith("py:") else case


def check_target(kind, value, shm_ns, ref_ns, ref):
    """('met'|'missed'|'—', text) for one target against reference case `ref`."""
    r = ratio(shm_ns, ref_ns)
    if kind == "time<=":
        want = f"time ≤{value:g}× {label(ref)}"
        if r is None:
            return DASH, want
        return ("met" if r <= value else "missed"), f"{want} ({r:.3g}×)"
    want = f"thrpt ≥{value * 100:g}% {label(ref)}" if value < 1 else f"thrpt ≥{value:g}× {label(ref)}"
    if r is None:
        return DASH, want
    got = 1 / r
    shown = f"{got * 100:.3g}%" if value < 1 else f"{got:.3g}×"
    return ("met" if got >= value else "missed"), f"{want} ({shown})"


def machine():
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    model = ""
    for line in run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    return {
        "cpu": model or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "rustc": run(["rustc", "--version"]) or "unknown",
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def build(peers):
    areas = {}
    for area, group, case, role in ROWS:
        areas.setdefault(area, {}).setdefault(group, []).append((case, role))

    def value(group, case):
        if case.startswith("py:"):
            v = peers.get(case[3:]) if peers else None
            return (float(v) if isinstance(v, (int, float)) else None), None
        return criterion_result(group, case)

    out = []
    tally = {"met": 0, "missed": 0, DASH: 0}
    for area, groups in areas.items():
        out.append(f"### {area}\n")
        out.append("| case | time/op | vs floor | shmproc vs peers | targets |")
        out.append("|---|---|---|---|---|")
        for group, cases in groups.items():
            results = {case: value(group, case) for case, _ in cases}
            floor = next((c for c, r in cases if r == "floor"), None)
            floor_ns = results[floor][0] if floor else None
            # Python rows carry no throughput of their own: they do the group's unit of work.
            group_thr = next((t for _, t in results.values() if t), None)
            peers_of = [c for c, r in cases if r == "peer"]
            for case, role in cases:
                ns, thr = results[case]
                if case.startswith("py:"):
                    thr = group_thr
                name = f"{group}/{label(case)}"
                if role == "floor":
                    name += " (floor)"
                elif role == "shmproc":
                    name = f"**{name}**"
                vs_floor = "1×" if role == "floor" and ns is not None else fmt_ratio(ratio(ns, floor_ns))
                if role == "ref":
                    vs_floor = ""
                vs_peers = ""
                marks = ""
                if role == "shmproc":
                    vs_peers = ", ".join(f"{fmt_ratio(ratio(ns, results[p][0]))} {label(p)}" for p in peers_of)
                    marks_list = []
                    for t_group, t_case, ref, kind, val in TARGETS:
                        if (t_group, t_case) != (group, case):
                            continue
                        ref_ns = results[ref][0] if ref in results else value(group, ref)[0]
                        status, text = check_target(kind, val, ns, ref_ns, ref)
                        tally[status] += 1
                        marks_list.append(f"{status}: {text}")
                    marks = "; ".join(marks_list)
                out.append(f"| {name} | {fmt_time(ns)}{fmt_rate(ns, thr)} | {vs_floor} | {vs_peers} | {marks} |")
        out.append("")
    notes = []
    if peers is None:
        why = "python3 is not installed" if shutil.which("python3") is None else "it was not run"
        notes.append(f"No Python peers: `{os.path.relpath(PEERS_JSON, ROOT)}` is missing ({why}); "
                     "run `python3 benches/python_peers.py`.")
    else:
        meta = peers.get("_meta", {})
        notes.append(f"Python peers: Python {meta.get('python', '?')}, multiprocessing start method "
                     f"'{meta.get('start_method', '?')}', median of {meta.get('repeats', '?')} runs"
                     + (" (--quick)" if meta.get("quick") else "") + ".")
        for case, err in (meta.get("failures") or {}).items():
            notes.append(f"Python case {case} failed: {err}")
    if not os.path.isdir(CRITERION_DIR):
        notes.append(f"No criterion results under `{os.path.relpath(CRITERION_DIR, ROOT)}`: run `cargo bench`.")
    notes.append(f"Targets: {tally['met']} met, {tally['missed']} missed, {tally[DASH]} not measured yet.")
    return "\n".join(out), notes


def main():
    peers = load_json(PEERS_JSON)
    tables, notes = build(peers)
    m = machine()
    text = "\n".join([tables, *(f"> {n}" for n in notes), ""])
    print(text)
    if "--no-write" in sys.argv:
        return 0
    doc = "\n".join([
        "# Benchmarks",
        "",
        "shmproc against its floors (what the OS and hardware give at best) and its peers, all from",
        "one run on one machine. Times are criterion's mean per operation; ratios are time ratios",
        "(lower is faster) unless a target says throughput. Rows in bold are shmproc; a `—` is a",
        "case not benched yet.",
        "",
        "Regenerate: `cargo bench -- --warm-up-time 1 --measurement-time 2 && python3 "
        "benches/python_peers.py && python3 benches/compare.py`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, {m['rustc']}, {m['date']}, "
        f"load average {m['load']} (1/5/15 min) when compared; other work on the machine moves these figures. "
        "Cross-core figures on this machine drift by up to 8x between runs (DESIGN.md §3): compare "
        "rows of the same run only.",
        "",
        text,
    ])
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path, "w") as f:
        f.write(doc)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
