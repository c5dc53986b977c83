"""Benchmark the local backend: up cold, ready for work, trigger-to-first-task, up warm, idle PSS.

    .venv/bin/python benchmarks/bench_local_up.py [--idle-seconds 20] [--reuse-runs 5]

Phases, in a private state root (never a sandbox of yours), purged at the end:
1. up cold: envs cached, no state (the schema cache may exist: it is per platform env);
2. ready for work: right after ``up`` returns, the harness's Airflow client waits for the DAG (as a
   scenario does), unpauses it and triggers a run: when did its first task start, counted from the
   start of ``up``, and from the trigger? Then the run's per-task phases (benchmarks/phases.py);
3. a second trigger on the now warm stack: trigger-to-first-task again;
4. idle PSS of every process of the stack after ``--idle-seconds``;
5. up on a healthy stack (reuse, median of ``--reuse-runs``); down; up warm (a stopped sandbox, state
   kept); down --purge.

Goals on 2 cores: up cold <= 12 s to ready for work, trigger-to-first-task about 1 s, idle PSS
<= 1.0 GiB. Prints one JSON line last; record the load average next to each figure.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

import phases as ph

from sandbox import backend_options
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


DAG = "train_model_pipeline"


def probe_run(platform: object, label: str) -> dict[str, object]:
    """Trigger one small run now; its trigger-to-first-task, wall and per-task phases."""
    import datetime as dt

    airflow = platform.airflow  # type: ignore[attr-defined]
    name = f"bench-{label}-{os.getpid()}"
    run_id = f"bench__{label}__{os.getpid()}"
    triggered = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    airflow.trigger(DAG, run_id, {"experiment_name": name, "model_name": name})
    first = ph.first_task_start(airflow, DAG, run_id)
    state = ph.wait_final(airflow, DAG, run_id)
    return {
        "run_id": run_id,
        "state": state,
        "trigger_to_first_task_s": round((first - triggered).total_seconds(), 2),
        "first_task_at_monotonic": t0 + (first - triggered).total_seconds(),
        "wall_s": round(time.monotonic() - t0, 2),
        "phases": ph.task_phases(airflow, DAG, run_id),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="settle time before measuring PSS")
    parser.add_argument("--reuse-runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the stack running (state root printed)")
    args = parser.parse_args()
    from sandbox.scenarios.runner import Platform, Runner

    load_at_start = round(os.getloadavg()[0], 2)
    started = time.monotonic()
    env = ensure_platform_env()
    env_seconds = time.monotonic() - started
    root = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    # $MLOPS_SANDBOX_WARM_JOBS=0: without the job server (every job a fresh interpreter), to compare.
    options = backend_options.resolve("local", gpu=None, context=None, job_image=None)
    backend = LocalBackend(f"bench{os.getpid()}", state_root=root, **options)  # type: ignore[arg-type]
    phases: dict[str, float] = {}
    last = [time.monotonic()]

    def progress(service: str, event: str, _detail: str) -> None:
        if event == "ready":
            phases[service] = round(time.monotonic() - last[0], 2)

    backend.progress = progress
    try:
        last[0] = up_start = time.monotonic()
        cold = backend.up()
        cpu_at_ready = stack_cpu_seconds(backend)
        backend.progress = lambda *_: None  # the figures above are the cold start's
        platform = Platform(backend)
        Runner(platform).ensure_dag(DAG, time.monotonic() + 300)
        dag_ready_s = time.monotonic() - up_start
        first = probe_run(platform, "cold")
        second = probe_run(platform, "warm")
        unrequested = ph.unrequested_runs(platform.airflow, DAG, [first["run_id"], second["run_id"]])
        time.sleep(args.idle_seconds)
        pss, per_service = stack_pss(backend)
        reuse = []
        for _ in range(args.reuse_runs):
            t0 = time.monotonic()
            result = backend.up()
            reuse.append(time.monotonic() - t0)
            assert result.reused, "a healthy stack was not reused"
        if args.keep:
            down_seconds = restart_s = 0.0
        else:
            t0 = time.monotonic()
            backend.down()
            down_seconds = time.monotonic() - t0
            restart = backend.up()
            restart_s = restart.seconds
            backend.down(purge=True)
    except BaseException:
        backend.down(purge=True)
        raise

    figures = {
        "env_check_s": round(env_seconds, 2),
        "up_cold_s": round(cold.seconds, 2),
        "dag_ready_after_up_start_s": round(dag_ready_s, 2),
        "first_task_after_up_start_s": round(float(first["first_task_at_monotonic"]) - up_start, 2),
        "trigger_to_first_task_cold_s": first["trigger_to_first_task_s"],
        "trigger_to_first_task_warm_s": second["trigger_to_first_task_s"],
        "first_run_wall_s": first["wall_s"],
        "second_run_wall_s": second["wall_s"],
        "run_states": [first["state"], second["state"]],
        "unrequested_runs": unrequested,
        "up_on_healthy_s_median": round(statistics.median(reuse), 3),
        "up_warm_restart_s": round(restart_s, 2),
        "idle_pss_gib": round(pss / GIB, 3),
        "down_s": round(down_seconds, 2),
        "ready_at_s": phases,
        "cpu_s_at_ready": cpu_at_ready,
        "cpu_s_total_at_ready": round(sum(cpu_at_ready.values()), 1),
        "pss_mib_by_service": {k: round(v / 2**20) for k, v in sorted(per_service.items())},
        "phases_first_run": first["phases"],
        "phases_second_run": second["phases"],
        "cpus": os.cpu_count(),
        "load_avg_1m_at_start": load_at_start,
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "platform_env": str(env),
    }
    print(f"up cold (envs cached)        : {figures['up_cold_s']:6.1f} s")
    print(f"DAG visible, from up's start : {figures['dag_ready_after_up_start_s']:6.1f} s")
    print(f"first task, from up's start  : {figures['first_task_after_up_start_s']:6.1f} s   goal <= 12 s")
    print(f"trigger -> first task (cold) : {figures['trigger_to_first_task_cold_s']:6.2f} s   goal ~1 s")
    print(f"trigger -> first task (warm) : {figures['trigger_to_first_task_warm_s']:6.2f} s")
    print(f"run wall (first, second)     : {first['wall_s']:6.1f} s, {second['wall_s']:.1f} s")
    print(f"unrequested DAG runs         : {unrequested or 'none'}")
    print(f"up on a healthy stack        : {figures['up_on_healthy_s_median']:6.3f} s")
    print(f"up warm (stopped, state kept): {figures['up_warm_restart_s']:6.1f} s")
    print(f"idle PSS of the stack        : {figures['idle_pss_gib']:6.2f} GiB goal <= 1.0 GiB")
    print(f"down                         : {figures['down_s']:6.1f} s")
    print(
        f"CPU seconds used by the start: {figures['cpu_s_total_at_ready']:6.1f} s on {os.cpu_count()} cores "
        f"(load {load_at_start} at start, {figures['load_avg_1m_at_end']} at end)"
    )
    for name, mib in figures["pss_mib_by_service"].items():
        print(f"  {name:24} {mib:6d} MiB")
    print("phases of the second run (s):")
    print(ph.table(second["phases"]))  # type: ignore[arg-type]
    if args.keep:
        print(f"kept running: MLOPS_SANDBOX_HOME={root} sandbox status --name {backend.sandbox_name}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
