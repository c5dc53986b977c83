"""Scenario benchmark on a warm stack: per scenario wall time, job time, overhead ratio; suite wall.

    .venv/bin/python benchmarks/bench_scenarios.py [PATHS...] [--backend local] [--sandbox-name bench]
        [--pytest] [--down] [--task-runtime docker]
    MLOPS_SANDBOX_WARM_JOBS=0 .venv/bin/python benchmarks/bench_scenarios.py ...  # no job server

"job time" is the sum of the task instances' own durations over every try (Airflow's API), so
``overhead = wall / job time`` is what the platform and the harness add around the jobs
(scheduling, polling, observation). Per task, the median phases over every DAG run of the suite
(queue-to-start, Airflow's task runner, job start-up, work, MLflow: benchmarks/phases.py).
Goals on 2 cores: one-run scenario <= 8 s warm, default suite <= 60 s warm (parallel).
Record the load average (printed) next to each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

import phases as ph

from sandbox import backend_options, paths
from sandbox.pytest_plugin import scenario_skip
from sandbox.scenarios.loader import discover, load_all
from sandbox.scenarios.runner import Platform, Runner, run_scenarios
from sandbox.stack import get_backend


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path, default=[paths.SCENARIOS_DIR])
    ap.add_argument("--backend", default="local")
    ap.add_argument("--sandbox-name", default="default")
    ap.add_argument("--task-runtime", default=None, help="local backend: local (default) or docker")
    ap.add_argument("--pytest", action="store_true", help="also time the suite through pytest (sandbox run)")
    ap.add_argument(
        "--parallel",
        type=int,
        nargs="+",
        default=[1],
        metavar="N",
        help="with --pytest: time the suite once per N given, N scenarios at a time (e.g. --parallel 1 2 3)",
    )
    ap.add_argument("--down", action="store_true", help="stop the stack afterwards (default: keep it warm)")
    args = ap.parse_args(argv)
    console = Console(highlight=False)

    files = [f for p in args.paths for f in discover(p)]
    scenarios = load_all(files)
    # As `sandbox run` resolves them: $MLOPS_SANDBOX_WARM_JOBS=0 measures every job as a fresh interpreter.
    options = backend_options.resolve(
        args.backend, gpu=None, context=None, job_image=None, task_runtime=args.task_runtime
    )
    backend = get_backend(args.backend, args.sandbox_name, **options)
    t0 = time.monotonic()
    up = backend.up()
    console.print(f"stack {'reused' if up.reused else 'started'} in {time.monotonic() - t0:.1f}s")
    platform = Platform(backend)
    # Warm-up: the DAG parsed and unpaused, clients authenticated (not part of any scenario's time).
    Runner(platform).ensure_dag("train_model_pipeline", time.monotonic() + 90)

    runtime = f", {args.task_runtime} task runtime" if args.task_runtime else ""
    runtime += ", warm jobs off" if options.get("warm_jobs") is False else ""
    table = Table(title=f"scenarios on {backend.name}{runtime} (warm)")
    for col in ("scenario", "verdict", "runs", "wall s", "job s", "overhead", "per-run wall s"):
        table.add_column(col)
    rows = []
    run_phases: list[dict[str, dict[str, float]]] = []
    load_at_start = round(os.getloadavg()[0], 2)
    suite_start = time.monotonic()
    for ls in scenarios:
        sc = ls.scenario
        reason = scenario_skip(backend, sc)
        if reason:
            table.add_row(ls.path.stem, "skipped", "-", "-", "-", "-", reason)
            continue
        console.print(f"[dim]running {ls.path.stem}...[/]")
        result = Runner(platform).run(sc, ls.path)
        for r in result.runs:
            run_phases.append(ph.task_phases(platform.airflow, sc.dag, r.observation.dag_run_id))
        job = sum(r.observation.job_seconds() for r in result.runs)
        ratio = result.wall_seconds / job if job else float("nan")
        per_run = ", ".join(f"{r.observation.wall_seconds:.1f}" for r in result.runs)
        rows.append(
            {
                "scenario": ls.path.stem,
                "verdict": result.verdict,
                "runs": len(result.runs),
                "wall_s": round(result.wall_seconds, 2),
                "job_s": round(job, 2),
                "overhead": round(ratio, 2),
                "per_run_wall_s": [round(r.observation.wall_seconds, 2) for r in result.runs],
                "failure": result.failure_text() or None,
            }
        )
        table.add_row(
            ls.path.stem,
            result.verdict,
            str(len(result.runs)),
            f"{result.wall_seconds:.1f}",
            f"{job:.1f}",
            f"{ratio:.2f}",
            per_run,
        )
    suite_wall = time.monotonic() - suite_start
    console.print(table)
    console.print(f"whole suite through the runner, warm: {suite_wall:.1f}s")
    medians = ph.median_phases(run_phases)
    console.print("median phases per task over every DAG run (s):")
    console.print(ph.table(medians), markup=False)
    out = {
        "backend": backend.name,
        "suite_wall_s": round(suite_wall, 2),
        "scenarios": rows,
        "phases_median": medians,
        "load_avg_1m_at_start": load_at_start,
        "load_avg_1m_at_end_of_runner_suite": round(os.getloadavg()[0], 2),
    }

    if args.pytest:
        out["pytest_suite"] = []
        for workers in args.parallel:
            t1 = time.monotonic()
            code = run_scenarios(
                [str(p) for p in args.paths],
                args.backend,
                args.sandbox_name,
                keep=True,
                extra_args=["-q", "-p", "no:cacheprovider", "--parallel", str(workers)],
            )
            wall = round(time.monotonic() - t1, 2)
            out["pytest_suite"].append({"parallel": workers, "wall_s": wall, "exit_code": code})
            console.print(f"whole suite through pytest, warm, --parallel {workers}: {wall}s (exit {code})")

    report = paths.reports_dir() / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(out, indent=2))
    console.print(f"wrote {report}")
    if args.down:
        backend.down()
    suites_ok = all(r["exit_code"] == 0 for r in out.get("pytest_suite", []))
    return 0 if suites_ok and all(r["verdict"] == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
