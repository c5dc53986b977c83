"""Reports: live progress lines, the summary table, the Markdown report and diagnostics bundles.

Everything written to a file or the terminal goes through ``redact`` with the backend's secrets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from sandbox import paths
from sandbox.redaction import redact

if TYPE_CHECKING:
    from sandbox.scenarios.runner import Platform, ScenarioResult


__all__ = ["redact"]  # re-exported: the one rule lives in sandbox.redaction


# --- live progress ------------------------------------------------------------------------------


class LiveProgress:
    """Prints one styled line per scenario step as it happens (task state changes, run verdicts).

    ``suspend`` is a context manager that lets output reach the terminal while pytest captures.
    """

    def __init__(
        self,
        file: IO[str] | None = None,
        suspend: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
        secrets: Callable[[], list[str]] | None = None,
    ) -> None:
        self._file = file
        self._suspend = suspend or contextlib.nullcontext
        self._secrets = secrets or list
        self._started: dict[str, float] = {}
        self._fresh: set[str] = {"stack"}
        self._lock = threading.Lock()  # scenarios running side by side print whole lines, one at a time

    def _console(self) -> Console:
        return Console(file=self._file, highlight=False, soft_wrap=True)

    def emit(self, scenario: str, message: str, style: str = "dim") -> None:
        start = self._started.setdefault(scenario, time.monotonic())
        text = redact(message, self._secrets())
        elapsed = time.monotonic() - start
        with self._lock, self._suspend():
            first = scenario in self._fresh
            self._fresh.discard(scenario)
            if first:  # pytest has just written the item's name without a newline
                self._console().print()
            line = f"  [bold cyan]{scenario}[/] [{style}]{_escape(text)}[/] [dim]({elapsed:.1f}s)[/]"
            self._console().print(line)

    def for_scenario(self, scenario: str) -> Callable[[str], None]:
        self._started[scenario] = time.monotonic()
        self._fresh.add(scenario)
        return lambda msg: self.emit(scenario, msg)


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


# --- summary ------------------------------------------------------------------------------------

KEY_METRICS = ("accuracy", "f1", "f1_macro")


def summary_row(item_id: str, result: ScenarioResult | None, verdict: str, wall: float) -> dict[str, str]:
    """One row of the summary (also the Markdown table)."""
    if result is None or not result.runs:
        return {
            "scenario": item_id,
            "verdict": verdict,
            "dag": "-",
            "metrics": "-",
            "registry": "-",
            "wall": f"{wall:.1f}s",
        }
    states = " -> ".join(r.observation.state for r in result.runs)
    last = result.runs[-1].observation
    metrics = last.metrics()
    shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in KEY_METRICS if k in metrics) or "-"
    reg = last.registry
    if reg is None or not reg.exists:
        registry = "no model"
    else:
        aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(reg.aliases.items())) or "no alias"
        registry = f"{len(reg.versions)} version(s), {aliases}"
    return {
        "scenario": item_id,
        "verdict": verdict,
        "dag": states,
        "metrics": shown,
        "registry": registry,
        "wall": f"{wall:.1f}s",
    }


def stack_row(backend: str, sandbox_name: str, verdict: str, wall: float) -> dict[str, str]:
    """The stack start's own row (``started``, ``reused`` or ``failed``): no scenario's wall includes it."""
    return {
        "scenario": STACK_ROW,
        "verdict": verdict,
        "dag": f"{backend} backend, sandbox {sandbox_name}",
        "metrics": "-",
        "registry": "-",
        "wall": f"{wall:.1f}s",
    }


STACK_ROW = "(stack start)"
_VERDICT_STYLE = {
    "passed": "green", "failed": "red", "error": "red", "skipped": "yellow", "started": "green",
    "reused": "green",
}  # fmt: skip


def summary_table(rows: list[dict[str, str]]) -> Table:
    table = Table(title="Scenario summary", show_lines=False)
    for col in ("scenario", "verdict", "DAG run(s)", "key metrics", "registry", "wall"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = _VERDICT_STYLE.get(r["verdict"], "")
        table.add_row(
            r["scenario"], f"[{style}]{r['verdict']}[/]", r["dag"], r["metrics"], r["registry"], r["wall"]
        )
    return table


def write_markdown(
    rows: list[dict[str, str]],
    details: list[tuple[str, str, Path | None]],
    *,
    backend: str,
    sandbox_name: str,
    total_wall: float,
    secrets: Iterable[str] = (),
    dest: Path | None = None,
    timelines: Iterable[tuple[str, str]] = (),
) -> Path:
    """The Markdown report: summary table, each failure's mismatches and diagnostics path, then the
    timeline of every scenario with service faults (task tries and faults, seconds since the trigger)."""
    out_dir = dest or paths.reports_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    counts: dict[str, int] = {}
    for r in rows:
        if r["scenario"] != STACK_ROW:  # the counts are scenarios'; the stack has its own row
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    lines = [
        f"# Scenario report {stamp}",
        "",
        f"Backend `{backend}`, sandbox `{sandbox_name}`; "
        + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        + f"; {total_wall:.1f}s in all.",
        "",
        "| scenario | verdict | DAG run(s) | key metrics | registry | wall |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            r[k].replace("|", "\\|") for k in ("scenario", "verdict", "dag", "metrics", "registry", "wall")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for item_id, text, bundle in details:
        lines += ["", f"## {item_id}", "", "```text", text.rstrip(), "```"]
        if bundle is not None:
            lines += ["", f"Diagnostics: `{bundle}`"]
    timelines = list(timelines)
    if timelines:
        lines += ["", "## Fault timelines"]
        for item_id, text in timelines:
            lines += ["", f"### {item_id}", "", "```text", text.rstrip(), "```"]
    # The sandbox's name keeps two suites run side by side from overwriting each other's report.
    path = out_dir / f"scenarios-{stamp}-{sandbox_name}.md"
    body = redact("\n".join(lines) + "\n", secrets)
    path.write_text(body)
    (out_dir / "latest.md").write_text(body)
    return path


# --- diagnostics --------------------------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


@contextlib.contextmanager
def _best_effort(errors: list[str], what: str) -> Iterator[None]:
    """Diagnostics must not hide the failure they document: note the error and go on."""
    try:
        yield
    except Exception as exc:
        errors.append(f"{what}: {type(exc).__name__}: {exc}")


def write_diagnostics(platform: Platform, result: ScenarioResult, dest: Path) -> Path:
    """A failed scenario's bundle: its verdict, observations, task logs per try, MLflow state,
    S3 listing, and the backend's own service logs (which it redacts itself). Returns the bundle folder."""
    dest.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []

    def write(rel: str, text: str) -> None:
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(platform.redact(text))

    write("verdict.txt", f"{result.verdict}\n\n{result.failure_text()}\n")
    if result.timelines:
        write("timeline.txt", result.timeline_text() + "\n")
    write(
        "scenario.json",
        json.dumps(
            {
                "name": result.scenario.name,
                "file": str(result.path) if result.path else None,
                "experiment_name": result.experiment_name,
                "model_name": result.model_name,
                "scenario": result.scenario.model_dump(mode="json", by_alias=True),
            },
            indent=2,
        ),
    )
    af = platform.airflow
    dag_id = result.scenario.dag
    for run in result.runs:
        obs = run.observation
        write(f"runs/{run.index + 1}/observation.json", json.dumps(_jsonable(obs), indent=2))
        for task in obs.tasks.values():
            for n in range(1, task.try_number + 1):
                with _best_effort(errors, f"log of {task.task_id} try {n}"):
                    write(
                        f"runs/{run.index + 1}/logs/{task.task_id}/try-{n}.log",
                        af.log(dag_id, obs.dag_run_id, task.task_id, n),
                    )
    # An aborted run has no observation yet: list the scenario's DAG runs and their task logs.
    if result.aborted is not None:
        with _best_effort(errors, "aborted run's task logs"):
            for run_id in _dag_run_ids(platform, dag_id, result):
                for ti in af.task_instance_list(dag_id, run_id):
                    for n in range(1, ti.try_number + 1):
                        write(
                            f"aborted/{run_id}/logs/{ti.task_id}/try-{n}.log",
                            af.log(dag_id, run_id, ti.task_id, n),
                        )
    with _best_effort(errors, "mlflow registry"):
        write(
            "mlflow/registry.json",
            json.dumps(_jsonable(platform.mlflow.registry(result.model_name)), indent=2),
        )
    with _best_effort(errors, "s3 listing"):
        keys = platform.s3.list_keys(platform.data_bucket, "runs/")
        own = [k for k in keys if any(marker in k for marker in _run_markers(result))]
        write("s3/listing.txt", "\n".join(own) + "\n")
    with _best_effort(errors, "backend diagnostics"):
        platform.backend.diagnostics(dest / "backend")
    if errors:
        write("diagnostics-errors.txt", "\n".join(errors) + "\n")
    return dest


def _token_marker(result: ScenarioResult) -> str:
    """What every DAG run id the runner triggers for the scenario contains: its isolation names' token."""
    return f"__{result.experiment_name.rsplit('-', 1)[-1]}__"


def _run_markers(result: ScenarioResult) -> list[str]:
    """What the scenario's DAG run ids contain: the runs the scheduler made for it (`trigger: schedule`),
    or the token of the runs the runner triggered."""
    return list(result.scheduled_runs) or [_token_marker(result)]


def _dag_run_ids(platform: Platform, dag_id: str, result: ScenarioResult) -> list[str]:
    marker = _token_marker(result)
    return list(result.scheduled_runs) or platform.airflow.dag_run_ids(dag_id, containing=marker)
