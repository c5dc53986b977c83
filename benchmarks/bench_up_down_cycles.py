"""Benchmark the local backend under repetition: N ``up``/``down`` cycles, counting what leaks.

    .venv/bin/python benchmarks/bench_up_down_cycles.py [--cycles 50] [--purge-each]

After every ``down`` it counts: processes of the sandbox still alive (by the sandbox's marker, and
every process the cycle's services had started), the sandbox's ports still accepting connections,
this harness's own file descriptors above what it held after the first cycle (a one-time import
or cache is not a leak; growth is), and its live child processes. Runs in a private state root
(never touches a sandbox of yours), purged at the end. Prints one line per cycle and one JSON line
last; exits 1 when anything leaked.
``tests/local/test_cycles.py`` runs a short version of the same loop.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.backends.local.backend import LocalBackend
from sandbox.backends.local.process import find, marked_processes, session_members
from sandbox.ports import port_in_use


@dataclass
class Cycle:
    """One up/down cycle: how long each half took, and what was left behind after ``down``."""

    up_s: float
    down_s: float
    processes: int  # started by the cycle, still alive after down (zombies excluded)
    ports: int  # the sandbox's ports still accepting connections after down
    fds: int  # this harness's open file descriptors after down (growth is computed by run())
    children: int  # this harness's live child processes


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cycle(backend: LocalBackend) -> Cycle:
    """One ``up`` then ``down`` of ``backend``, and the counts of what ``down`` left behind."""
    me = psutil.Process()
    t0 = time.monotonic()
    backend.up()
    up_s = time.monotonic() - t0
    model = backend.state.load()
    assert model is not None, "up recorded no state"
    started: dict[int, psutil.Process] = {}
    for record in model.services.values():
        leader = find(record)
        if leader is not None:
            started[leader.pid] = leader
    for proc in session_members(model.services.values()):
        started[proc.pid] = proc
    ports = sorted(set(model.ports.values()))
    t0 = time.monotonic()
    backend.down()
    down_s = time.monotonic() - t0
    left = {p.pid for p in started.values() if _alive(p)}
    left |= {p.pid for p in marked_processes(backend.state.marker) if _alive(p)}
    with contextlib.suppress(psutil.Error):
        psutil.wait_procs([psutil.Process(pid) for pid in left if psutil.pid_exists(pid)], timeout=0)
    children = [c for c in me.children(recursive=True) if _alive(c)]
    return Cycle(
        up_s=round(up_s, 2),
        down_s=round(down_s, 2),
        processes=len(left),
        ports=sum(port_in_use(p) for p in ports),
        fds=me.num_fds(),
        children=len(children),
    )


def run(cycles: int, root: Path, *, purge_each: bool = False, report: bool = True) -> list[Cycle]:
    """``cycles`` up/down cycles of one sandbox under ``root``; purged at the end."""
    backend = LocalBackend(f"cycles{os.getpid()}", state_root=root)
    results: list[Cycle] = []
    baseline_fds = 0
    try:
        for i in range(cycles):
            result = cycle(backend)
            baseline_fds = baseline_fds or result.fds
            result.fds -= baseline_fds  # growth since the first cycle
            results.append(result)
            if purge_each:
                backend.down(purge=True)
            if report:
                print(
                    f"cycle {i + 1:3d}/{cycles}: up {result.up_s:6.1f}s  down {result.down_s:5.1f}s  "
                    f"leaked: processes {result.processes}  ports {result.ports}  fds {result.fds}  "
                    f"children {result.children}  (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    finally:
        backend.down(purge=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--purge-each", action="store_true", help="delete the state after every down")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-cycles-"))
    started = time.monotonic()
    results = run(args.cycles, root, purge_each=args.purge_each)
    leaks = {k: sum(getattr(r, k) for r in results) for k in ("processes", "ports", "fds", "children")}
    figures = {
        "cycles": len(results),
        "leaked_total": leaks,
        "cycles_with_a_leak": sum(1 for r in results if r.processes or r.ports or r.fds or r.children),
        "up_s_median": round(statistics.median(r.up_s for r in results), 2),
        "up_s_max": max(r.up_s for r in results),
        "down_s_median": round(statistics.median(r.down_s for r in results), 2),
        "down_s_max": max(r.down_s for r in results),
        "wall_s": round(time.monotonic() - started, 1),
        "cpus": os.cpu_count(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "per_cycle": [asdict(r) for r in results],
    }
    print(
        f"{len(results)} cycles: leaked processes {leaks['processes']}, ports {leaks['ports']}, "
        f"harness fds {leaks['fds']}, harness children {leaks['children']}; "
        f"up median {figures['up_s_median']}s (max {figures['up_s_max']}s), "
        f"down median {figures['down_s_median']}s (max {figures['down_s_max']}s)"
    )
    print(json.dumps(figures))
    return 1 if figures["cycles_with_a_leak"] else 0


if __name__ == "__main__":
    sys.exit(main())
