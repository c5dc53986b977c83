"""Chaos benchmark: the fault scenarios repeated N times on one warm stack; pass rate per scenario and
recovery time per fault.

    .venv/bin/python benchmarks/bench_chaos.py [PATHS...] [--repeat 5] [--sandbox-name chaos] [--down]

PATHS default to every ``scenarios/`` file with a service fault. "recovery" is from the start of a
fault's restore until the service was back (started again and ready, or continued after SIGSTOP);
"run wall" is the scenario's whole time. The load average before and after says how busy the machine
was. Goal on 2 cores: 100 % over 5 repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sandbox import paths
from sandbox.pytest_plugin import scenario_skip
from sandbox.scenarios.loader import discover, load_all
from sandbox.scenarios.runner import Platform, Runner
from sandbox.stack import get_backend


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path, default=[paths.SCENARIOS_DIR])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--backend", default="local")
    ap.add_argument("--sandbox-name", default="chaos")
    ap.add_argument("--down", action="store_true", help="stop the stack afterwards (default: keep it warm)")
    args = ap.parse_args(argv)
    console = Console(highlight=False)

    scenarios = [ls for ls in load_all([f for p in args.paths for f in discover(p)])
                 if ls.scenario.all_service_faults()]  # fmt: skip
    backend = get_backend(args.backend, args.sandbox_name)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    up = backend.up()
    console.print(f"stack {'reused' if up.reused else 'started'} in {time.monotonic() - t0:.1f}s")
    platform = Platform(backend)
    Runner(platform).ensure_dag("train_model_pipeline", time.monotonic() + 90)

    verdicts: dict[str, list[str]] = defaultdict(list)
    walls: dict[str, list[float]] = defaultdict(list)
    recovery: dict[str, list[float]] = defaultdict(list)  # "scenario: service action" -> seconds
    failures: list[dict[str, str]] = []
    for rep in range(1, args.repeat + 1):
        for ls in scenarios:
            name = ls.path.stem
            reason = scenario_skip(backend, ls.scenario)
            if reason:
                verdicts[name].append("skipped")
                continue
            console.print(f"[dim]repetition {rep}/{args.repeat}: {name}...[/]")
            result = Runner(platform).run(ls.scenario, ls.path)
            verdicts[name].append(result.verdict)
            walls[name].append(result.wall_seconds)
            for timeline in result.timelines:
                for record in timeline.faults:
                    if record.recovery_seconds is not None:
                        recovery[f"{name}: {record.fault.label()}"].append(record.recovery_seconds)
            if not result.passed:
                failures.append({"scenario": name, "repetition": str(rep), "failure": result.failure_text()})
                console.print(f"[red]{name} {result.verdict} (repetition {rep})[/]\n{result.failure_text()}")
    load_after = os.getloadavg()

    table = Table(title=f"chaos: {args.repeat} repetitions on {backend.name}")
    for col in ("scenario", "passed", "run wall s (min / median / max)"):
        table.add_column(col)
    for name, vs in verdicts.items():
        table.add_row(name, f"{vs.count('passed')}/{len(vs)}", _spread(walls[name]))
    console.print(table)
    rec = Table(title="recovery per fault, seconds (restore started -> service back)")
    for col in ("fault", "n", "min / median / max"):
        rec.add_column(col)
    for key, values in recovery.items():
        rec.add_row(key, str(len(values)), _spread(values))
    console.print(rec)
    console.print(
        f"load average (1/5/15 min) before: {' '.join(f'{x:.1f}' for x in load_before)}, "
        f"after: {' '.join(f'{x:.1f}' for x in load_after)}; {os.cpu_count()} CPUs"
    )
    out = {
        "backend": backend.name, "repeat": args.repeat,
        "pass_rate": {n: vs.count("passed") / len(vs) for n, vs in verdicts.items() if vs},
        "verdicts": verdicts, "wall_s": walls, "recovery_s": recovery, "failures": failures,
        "loadavg_before": load_before, "loadavg_after": load_after,
    }  # fmt: skip
    report = paths.reports_dir() / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(out, indent=2))
    console.print(f"wrote {report}")
    if args.down:
        backend.down()
    ran = [v for vs in verdicts.values() for v in vs if v != "skipped"]
    return 0 if ran and all(v == "passed" for v in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
