"""Benchmark the local backend: up from nothing (envs cached), up on a healthy stack, idle PSS.

    .venv/bin/python benchmarks/bench_local_up.py [--idle-seconds 20] [--reuse-runs 5]

Goals (2 cores): up from nothing <= 20 s, up on healthy <= 2 s, idle PSS <= 1.2 GiB.
Runs in a private state root, so it never touches a sandbox of yours; prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from sandbox.backends.local.backend import LocalBackend
from sandbox.backends.local.process import find, session_members
from sandbox.envs import ensure_platform_env

GIB = 1024**3


def stack_pss(backend: LocalBackend) -> tuple[int, dict[str, int]]:
    """PSS summed over every process of the stack (services, their workers, Postgres backends)."""
    model = backend.state.load()
    assert model is not None
    per_service: dict[str, int] = {}
    seen: set[int] = set()
    for name, record in model.services.items():
        leader = find(record)
        if leader is None:
            continue
        members = session_members([record])
        total = 0
        for proc in members:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            with contextlib.suppress(psutil.Error):
                total += proc.memory_full_info().pss
        per_service[name] = total
    return sum(per_service.values()), per_service


def stack_cpu_seconds(backend: LocalBackend) -> dict[str, float]:
    """CPU seconds (user + system, including reaped children) each service has used so far."""
    model = backend.state.load()
    assert model is not None
    used: dict[str, float] = {}
    for name, record in model.services.items():
        total = 0.0
        for proc in session_members([record]):
            try:
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        used[name] = round(total, 1)
    return used


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="settle time before measuring PSS")
    parser.add_argument("--reuse-runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the stack running (state root printed)")
    args = parser.parse_args()

    started = time.monotonic()
    env = ensure_platform_env()
    env_seconds = time.monotonic() - started
    root = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    backend = LocalBackend(f"bench{os.getpid()}", state_root=root)
    phases: dict[str, float] = {}
    last = [time.monotonic()]

    def progress(service: str, event: str, _detail: str) -> None:
        if event == "ready":
            phases[service] = round(time.monotonic() - last[0], 2)

    backend.progress = progress
    try:
        last[0] = time.monotonic()
        cold = backend.up()
        cpu_at_ready = stack_cpu_seconds(backend)
        reuse = []
        for _ in range(args.reuse_runs):
            t0 = time.monotonic()
            result = backend.up()
            reuse.append(time.monotonic() - t0)
            assert result.reused, "a healthy stack was not reused"
        time.sleep(args.idle_seconds)
        pss, per_service = stack_pss(backend)
        t0 = time.monotonic()
        if not args.keep:
            backend.down(purge=True)
        down_seconds = time.monotonic() - t0
    except BaseException:
        backend.down(purge=True)
        raise

    figures = {
        "env_check_s": round(env_seconds, 2),
        "up_from_nothing_s": round(cold.seconds, 2),
        "up_on_healthy_s_median": round(statistics.median(reuse), 3),
        "idle_pss_gib": round(pss / GIB, 3),
        "down_s": round(down_seconds, 2),
        "ready_at_s": phases,
        "cpu_s_at_ready": cpu_at_ready,
        "cpu_s_total_at_ready": round(sum(cpu_at_ready.values()), 1),
        "pss_mib_by_service": {k: round(v / 2**20) for k, v in sorted(per_service.items())},
        "cpus": os.cpu_count(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "platform_env": str(env),
    }
    print(f"up from nothing (envs cached): {figures['up_from_nothing_s']:6.1f} s   goal <= 20 s")
    print(f"up on a healthy stack        : {figures['up_on_healthy_s_median']:6.3f} s   goal <= 2 s")
    print(f"idle PSS of the stack        : {figures['idle_pss_gib']:6.2f} GiB goal <= 1.2 GiB")
    print(f"down                         : {figures['down_s']:6.1f} s")
    print(
        f"CPU seconds used by the start: {figures['cpu_s_total_at_ready']:6.1f} s on {os.cpu_count()} cores "
        f"(load {figures['load_avg_1m_at_end']})"
    )
    for name, mib in figures["pss_mib_by_service"].items():
        print(f"  {name:24} {mib:6d} MiB")
    if args.keep:
        print(f"kept running: MLOPS_SANDBOX_HOME={root} sandbox status --name {backend.sandbox_name}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
