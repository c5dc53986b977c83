"""Scenario benchmark on a warm stack: per scenario wall time, job time, overhead ratio; suite wall.

    .venv/bin/python benchmarks/bench_scenarios.py [PATHS...] [--backend local] [--sandbox-name bench]
        [--pytest] [--down]

"job time" is the sum of the task instances' own durations over every try (Airflow's API), so
``overhead = wall / job time`` is what the platform and the harness add around the jobs
(scheduling, polling, observation). Goals on 2 cores: one-run scenario <= 10 s warm,
overhead <= 1.3, default suite <= 90 s warm.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sandbox import paths
from sandbox.pytest_plugin import capability_skip
from sandbox.scenarios.loader import discover, load_all
from sandbox.scenarios.runner import Platform, Runner, run_scenarios
from sandbox.stack import get_backend


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path, default=[paths.SCENARIOS_DIR])
    ap.add_argument("--backend", default="local")
    ap.add_argument("--sandbox-name", default="default")
    ap.add_argument("--pytest", action="store_true", help="also time the suite through pytest (sandbox run)")
    ap.add_argument("--down", action="store_true", help="stop the stack afterwards (default: keep it warm)")
    args = ap.parse_args(argv)
    console = Console(highlight=False)

    files = [f for p in args.paths for f in discover(p)]
    scenarios = load_all(files)
    backend = get_backend(args.backend, args.sandbox_name)
    t0 = time.monotonic()
    up = backend.up()
    console.print(f"stack {'reused' if up.reused else 'started'} in {time.monotonic() - t0:.1f}s")
    platform = Platform(backend)
    # Warm-up: the DAG parsed and unpaused, clients authenticated (not part of any scenario's time).
    Runner(platform).ensure_dag("train_model_pipeline", time.monotonic() + 90)

    table = Table(title=f"scenarios on {backend.name} (warm)")
    for col in ("scenario", "verdict", "runs", "wall s", "job s", "overhead", "per-run wall s"):
        table.add_column(col)
    rows = []
    suite_start = time.monotonic()
    for ls in scenarios:
        sc = ls.scenario
        needs = [*sc.requires, *(["faults"] if sc.all_task_faults() or sc.all_service_faults() else [])]
        reason = capability_skip(backend, needs, sc)
        if reason:
            table.add_row(ls.path.stem, "skipped", "-", "-", "-", "-", reason)
            continue
        console.print(f"[dim]running {ls.path.stem}...[/]")
        result = Runner(platform).run(sc, ls.path)
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
    out = {"backend": backend.name, "suite_wall_s": round(suite_wall, 2), "scenarios": rows}

    if args.pytest:
        t1 = time.monotonic()
        code = run_scenarios(
            [str(p) for p in args.paths],
            args.backend,
            args.sandbox_name,
            keep=True,
            extra_args=["-q", "-p", "no:cacheprovider"],
        )
        out["pytest_suite_wall_s"] = round(time.monotonic() - t1, 2)
        out["pytest_exit_code"] = code
        console.print(f"whole suite through pytest, warm: {out['pytest_suite_wall_s']}s (exit code {code})")

    report = paths.reports_dir() / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(out, indent=2))
    console.print(f"wrote {report}")
    if args.down:
        backend.down()
    return 0 if all(r["verdict"] == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
