"""A ``ProductionRun`` as a scenario file that expects what production observed.

The file is written as commented YAML (each pin says where it came from, the header says how to flip
the expectation once the bug is fixed), validated with the project's own loader before it is
written, and refused when it would contain a credential.

Choices, explained in the file and in docs/reproduce.md:
- conf pins every resolved param (a local default that drifted cannot change the replay), minus the
  experiment and model names that the runner sets per scenario;
- the data: ``data_content_hash`` always (when production recorded one), plus ``data_source`` when
  the split was copied; the jobs refuse other bytes;
- a failed try that a later try of the same task recovered from (a transient failure) becomes a
  fault on the same try, so the retry path runs as it did in production;
- metrics are pinned to production's values within ``tolerance`` (training is seeded).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import paths
from sandbox.errors import ConfigError
from sandbox.reproduce.access import Credentials
from sandbox.reproduce.data import Copied
from sandbox.reproduce.source import (
    ISOLATION_PARAMS,
    TRAIN_TASK,
    MlflowRecord,
    ProductionRun,
    TaskRecord,
    VersionRecord,
    missing_mlflow_run,
)

DEFAULT_TOLERANCE = 1e-6
TIMEOUT_S = 300
CHAMPION = "champion"
GATE_TAG = "quality_gate"
DATA_PARAMS = ("data_content_hash", "data_source")
# MLflow params the train job logs under the DAG param's own name: its record of what it really used.
LOGGED_PARAMS = ("dataset", "label_noise", "seed", "test_size", "n_estimators", "max_depth")
# Run tags pinned as expectations: they must hold for the replay to be faithful.
PINNED_TAGS = ("airflow.dag_id", "airflow.task_id", "airflow.try_number", "mlops.data_content_hash",
               "mlops.jobs_version")  # fmt: skip
PINNED_TAG_PREFIXES = ("mlops.lib.",)
# Provenance tags shown as comments only: a checkout runs the jobs from source, so these differ
# even when the code is the same (see the header the scenario gets).
PROVENANCE_TAGS = ("mlops.code_version", "mlops.git_sha", "mlops.job_image", "mlops.chart_version",
                   "mlops.python_version", "mlops.data_source")  # fmt: skip


# --- decisions ----------------------------------------------------------------------------------


@dataclass
class Pin:
    """One pinned value and where it came from (its comment)."""

    value: Any
    note: str = ""


@dataclass
class FaultPlan:
    task: str
    tries: list[int]
    message: str
    why: list[str] = field(default_factory=list)


def resolved_conf(run: ProductionRun) -> dict[str, Pin]:
    """Every param the run resolved: its conf over the DAG's defaults, checked against MLflow's record."""
    trained = run.trained
    names = list(run.defaults) + [k for k in run.conf if k not in run.defaults]
    out: dict[str, Pin] = {}
    for name in names:
        if name in ISOLATION_PARAMS or name in DATA_PARAMS:
            continue
        pin = Pin(run.conf[name], "run conf") if name in run.conf else Pin(run.defaults[name], "DAG default")
        logged = trained.params.get(name) if trained and name in LOGGED_PARAMS else None
        if logged is not None and not _same(pin.value, logged):
            pin = Pin(_typed(logged, pin.value), f"as MLflow recorded it ({pin.note} says {pin.value!r})")
        out[name] = pin
    return out


def _same(value: Any, logged: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value) == logged
    try:
        return math.isclose(float(value), float(logged), rel_tol=1e-12)
    except ValueError:
        return False


def _typed(logged: str, like: Any) -> Any:
    """An MLflow param (text) with the type of the DAG param's value."""
    try:
        if isinstance(like, bool):
            return logged.lower() == "true"
        if isinstance(like, int):
            return int(logged)
        if isinstance(like, float):
            return float(logged)
    except ValueError:
        pass
    return logged


def _failed(state: str | None) -> bool:
    return state in ("failed", "up_for_retry")


def stable_failure(log: str, unstable: list[str]) -> str | None:
    """The job's own failure message in a log, cut before the first run-specific token.

    The jobs end a failed step with ``mlops_jobs <step>: <message>`` (``mlops_jobs/__main__.py``), in a
    pod's log as in a local one. Run ids, model names, versions and URIs differ in a reproduction, so
    the text stops before the first of them; None when nothing specific remains.
    """
    matches = [m for m in _JOB_FAILURE.finditer(log) if not m.group(2).startswith("done in")]
    if not matches:
        return None
    message = matches[-1].group(2).strip()
    cut = len(message)
    for token in filter(None, unstable):
        index = message.find(token)
        if index >= 0:
            cut = min(cut, index)
    for pattern in _UNSTABLE:
        found = pattern.search(message)
        if found:
            cut = min(cut, found.start())
    text = message[:cut].rstrip(" ([{,;:")
    return text if len(text) >= 16 else None


_JOB_FAILURE = re.compile(r"mlops_jobs (preprocess|train|evaluate): ([^\n]+)")
_UNSTABLE = (
    re.compile(r"\b[0-9a-f]{32}\b"),  # MLflow run ids
    re.compile(r"\bv\d+\b"),  # model versions
    re.compile(r"s3://|https?://"),
    re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"),  # timestamps
)


_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Exception|Error|Exit|Interrupt|Timeout)\w*): (.+)$", re.M)


def failure_line(log: str) -> str:
    """What a failed try died of, for a comment: the exception, else the job's message, else the last line."""
    exceptions = _EXCEPTION.findall(log)
    if exceptions:
        name, message = exceptions[-1]
        return f"{name}: {message}"[:200]
    jobs = [m.group(0) for m in _JOB_FAILURE.finditer(log)]
    lines = log.strip().splitlines()
    return (jobs[-1] if jobs else lines[-1] if lines else "(no log)")[:200]


def unstable_tokens(run: ProductionRun) -> list[str]:
    """Values that differ between production and a reproduction (never part of an expected log text)."""
    tokens = [run.dag_run_id, *(r.run_id for r in run.mlflow_runs)]
    for name in ISOLATION_PARAMS:
        value = run.conf.get(name, run.defaults.get(name))
        if isinstance(value, str) and value:
            tokens.append(value)
    tokens += [v.model_name for v in run.versions]
    return sorted(set(tokens), key=len, reverse=True)


def plan_faults(run: ProductionRun) -> list[FaultPlan]:
    """Faults for the failed tries a later try recovered from, or that failed differently from the last."""
    unstable = unstable_tokens(run)
    plans = []
    for task in run.tasks.values():
        final = task.tries[-1] if task.tries else None
        final_text = stable_failure(final.log_tail, unstable) if final and _failed(final.state) else None
        tries, why = [], []
        for attempt in task.tries[:-1]:
            if not _failed(attempt.state):
                continue
            text = stable_failure(attempt.log_tail, unstable)
            if task.state == "failed" and text is not None and text == final_text:
                continue  # the same failure as the last try: it reproduces by itself
            tries.append(attempt.try_number)
            why.append(f"try {attempt.try_number} failed: {failure_line(attempt.log_tail)}")
        if tries:
            label = "try" if len(tries) == 1 else "tries"
            message = f"reproduces production's failed {label} {', '.join(map(str, tries))} of {task.task_id}"
            plans.append(FaultPlan(task.task_id, tries, message, why))
    return plans


def reproduced_mlflow_runs(run: ProductionRun, faults: list[FaultPlan]) -> list[MlflowRecord]:
    """Production's MLflow runs the replay will log again: not those of tries a fault fails early."""
    faulted = {t for f in faults if f.task == TRAIN_TASK for t in f.tries}
    return [r for r in run.mlflow_runs if r.try_number not in faulted]


def gate_passed(run: ProductionRun, version: VersionRecord | None) -> bool:
    if version is None:
        return False
    if GATE_TAG in version.tags:
        return version.tags[GATE_TAG] == "passed"
    evaluate = run.tasks.get("evaluate_and_register")
    return evaluate is not None and evaluate.state == "success"


# --- YAML text ----------------------------------------------------------------------------------


def scalar(value: Any) -> str:
    """A YAML scalar of the exact type (strings always double-quoted, so YAML never re-types them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True)  # lists / mappings: JSON is YAML flow style


def text_expectation(value: str) -> str:
    """An equality on a text (param or tag): explicit ``==`` when the text could read as an operator."""
    if re.match(r"^\s*[<>=!~]", value) or ".." in value or not value.strip():
        return scalar(f"== {value}")
    return scalar(value)


def metric_expectation(value: float, tolerance: float) -> str:
    if tolerance <= 0 or not math.isfinite(value):
        return scalar(value)
    return scalar(f"{value - tolerance!r}..{value + tolerance!r}")


class _Doc:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def comment(self, text: str = "", indent: int = 0) -> None:
        for line in (text.splitlines() or [""]) if text else [""]:
            clean = "".join(ch if ch.isprintable() else " " for ch in line).rstrip()
            self.lines.append(" " * indent + ("# " + clean if clean else "#"))

    def line(self, text: str, indent: int = 0, note: str = "") -> None:
        clean_note = "".join(ch if ch.isprintable() else " " for ch in note)
        self.lines.append(" " * indent + text + (f"  # {clean_note}" if note else ""))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _key(name: str) -> str:
    """A mapping key; quoted when YAML would read it as something other than that text."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", name) else json.dumps(name)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "run"


def default_output(run: ProductionRun) -> Path:
    return paths.SCENARIOS_DIR / "repro" / f"{_slug(run.dag_run_id)}.yaml"


@dataclass
class Options:
    command: str
    output: Path
    copied: Copied | None = None
    tolerance: float = DEFAULT_TOLERANCE


def build(run: ProductionRun, options: Options) -> str:
    """The scenario text for ``run`` (not validated yet: see ``validate``)."""
    if run.state not in ("success", "failed"):
        raise ConfigError(
            f"DAG run {run.dag_run_id!r} is {run.state}: only a finished run can be reproduced.",
            "Wait until it ends (success or failed), then run `sandbox reproduce` again.",
        )
    train = run.tasks.get(TRAIN_TASK)
    if run.mlflow_url and train is not None and train.state == "success" and run.trained is None:
        raise missing_mlflow_run(run)
    faults = plan_faults(run)
    trained = run.trained
    doc = _Doc()
    _header(doc, run, options, faults)
    doc.line("apiVersion: mlops-sandbox/v1")
    doc.line(f"name: {scalar(f'reproduce {run.dag_id} run {run.dag_run_id} ({run.state})')}")
    doc.line(f"description: {scalar(_description(run))}")
    doc.line(f"dag: {scalar(run.dag_id)}")
    if trained is not None and "gpu.count" in trained.tags:
        doc.comment("Production trained on a GPU (MLflow tag gpu.count): skipped where none is available.")
        doc.line("requires: [gpu]")
    doc.comment("A deadline against hangs only; production's durations are in the task comments below.")
    doc.line(f"timeout: {TIMEOUT_S}")
    _conf(doc, run, options)
    _faults(doc, faults)
    _expect(doc, run, options, faults)
    return doc.text()


def _header(doc: _Doc, run: ProductionRun, options: Options, faults: list[FaultPlan]) -> None:
    schema = paths.SCENARIOS_DIR / "schema.json"
    try:
        ref = os.path.relpath(schema, options.output.absolute().parent)
        doc.line(f"# yaml-language-server: $schema={ref}")
    except ValueError:  # another drive (Windows): no schema hint
        pass
    doc.comment()
    doc.comment(f"Reproduction of production DAG run {run.dag_run_id!r} of {run.dag_id!r} ({run.state}).")
    doc.comment(f"Written by `{options.command}`")
    doc.comment(f"on {run.observed_at:%Y-%m-%d %H:%M:%S} UTC, reading (read-only) Airflow {run.airflow_url}")
    doc.comment(
        f"and MLflow {run.mlflow_url}." if run.mlflow_url else "MLflow was not read (no --mlflow-url)."
    )
    doc.comment("No credential is written here; they came from the environment or a --credentials file.")
    doc.comment()
    doc.comment("This scenario expects what production observed, so it PASSES while the bug is present.")
    for line in _flip_advice(run, faults):
        doc.comment(line)
    doc.comment()
    doc.comment("Where production's run came from (not checked: a checkout runs the jobs from source, so")
    doc.comment("these differ even for the same code; check out that code to replay it exactly):")
    if run.dag_version:
        doc.comment(f"  Airflow DAG version: {run.dag_version}; run type {run.run_type or 'unknown'}")
    trained = run.trained
    if trained is not None:
        for tag in PROVENANCE_TAGS:
            if tag in trained.tags:
                doc.comment(f"  {tag}: {trained.tags[tag]}")
        doc.comment(f"  MLflow run {trained.run_id} in experiment {trained.experiment_name!r}")
    for version in run.versions:
        doc.comment(
            f"  registered {version.model_name} v{version.version}"
            + (f" ({GATE_TAG}={version.tags[GATE_TAG]})" if GATE_TAG in version.tags else "")
        )
    if run.aliases_now:
        now = ", ".join(f"{a} -> v{v}" for a, v in sorted(run.aliases_now.items()))
        doc.comment(f"  aliases of that model now (when reproduced): {now}")
    doc.comment()


def _flip_advice(run: ProductionRun, faults: list[FaultPlan]) -> list[str]:
    failed = [t.task_id for t in run.tasks.values() if t.state == "failed"]
    out = ["Once the bug is fixed, flip the expectation to the correct behaviour (or keep this file as"]
    out.append("the bug's record and copy it as the regression test, with the pins of conf and data):")
    if "evaluate_and_register" in failed and any(GATE_TAG in v.tags for v in run.versions):
        out += [
            "  - the gate should pass: dag_run: success; evaluate_and_register: {state: success,",
            f'    try_number: 1}}; registry aliases {CHAMPION}: 1 and version_tags {GATE_TAG}: "passed"',
            "    (drop quality_gate.value or update it); remove log_contains.evaluate_and_register.",
        ]
    elif failed:
        out += [
            f"  - dag_run: success; {', '.join(failed)} (and the tasks after it): {{state: success,",
            "    try_number: 1}; remove their log_contains entries; then pin what the fixed run records.",
        ]
    else:
        out += [
            "  - production succeeded: change the expectation that is wrong (e.g. dag_run: failed,",
            f'    {GATE_TAG}: "failed" and {CHAMPION}: null for a model that should have been blocked).',
        ]
    if faults:
        out.append("  - the faults replay production's transient failures; drop them to run without.")
    return out


def _description(run: ProductionRun) -> str:
    failed = [t.task_id for t in run.tasks.values() if t.state == "failed"]
    retried = [f"{t.task_id} (try {t.try_number})" for t in run.tasks.values() if t.try_number > 1]
    parts = [f"Production's {run.dag_id} run {run.dag_run_id} ended {run.state}"]
    if failed:
        parts.append(f"with {', '.join(failed)} failed")
    if retried:
        parts.append(f"after retries of {', '.join(retried)}")
    return " ".join(parts) + "; this scenario replays it with the same params and data."


def _conf(doc: _Doc, run: ProductionRun, options: Options) -> None:
    doc.line("conf:")
    isolation = {n: run.conf.get(n, run.defaults.get(n)) for n in ISOLATION_PARAMS}
    doc.comment(
        "Every param the run resolved: its conf over the DAG's defaults (read from the Airflow API),\n"
        "checked against what the MLflow run recorded. Not replayed (the runner gives each scenario\n"
        "its own experiment and registered model): " + ", ".join(f"{n}={v!r}" for n, v in isolation.items()),
        indent=2,
    )
    for name, pin in resolved_conf(run).items():
        doc.line(f"{_key(name)}: {scalar(pin.value)}", 2, pin.note)
    trained = run.trained
    recorded = (trained.params.get("data_content_hash") if trained else None) or run.conf.get(
        "data_content_hash"
    )
    used_source = str(run.conf.get("data_source") or "") or (
        trained.tags.get("mlops.data_source", "") if trained else ""
    )
    copied = options.copied
    if copied is None and used_source.startswith("s3://"):
        raise ConfigError(
            f"Production's run read its split from {used_source}: regenerating cannot give the same bytes.",
            "Run `sandbox reproduce` again with --copy-data (or --data-from a saved copy).",
        )
    doc.comment("The same bytes: preprocess_data and train_model fail when the split hashes otherwise.", 2)
    if copied is not None:
        doc.comment(
            f"Copied from {copied.origin} ({copied.bytes} bytes) into the sandbox's S3;\n"
            'a sandbox without that copy fails in preprocess_data ("... is missing"): copy it there\n'
            "with the command above (--copy-data --name <sandbox>).",
            2,
        )
        doc.line(f"data_content_hash: {scalar(copied.content_hash)}", 2, "production's data_content_hash")
        doc.line(f"data_source: {scalar(copied.uri)}", 2)
    elif recorded:
        doc.comment(
            "Regenerated from the bundled dataset with the params above; the hash must come out as in\n"
            "production (other scikit-learn/numpy/pandas versions may split differently: use --copy-data).",
            2,
        )
        doc.line(f"data_content_hash: {scalar(recorded)}", 2, "MLflow param data_content_hash")
    else:
        doc.comment("Production recorded no content hash (no MLflow run): the data is not pinned.", 2)


def _faults(doc: _Doc, faults: list[FaultPlan]) -> None:
    if not faults:
        return
    doc.comment("Production's transient failures, replayed: each fault fails the same try of the same task")
    doc.comment("before its job starts, so Airflow retries it as it did in production. What failed there:")
    doc.line("faults:")
    for fault in faults:
        for why in fault.why:
            doc.comment(why, 2)
        doc.line(f"- task: {scalar(fault.task)}", 2)
        doc.line(f"tries: [{', '.join(str(t) for t in fault.tries)}]", 4)
        doc.line(f"message: {scalar(fault.message)}", 4)


def _expect(doc: _Doc, run: ProductionRun, options: Options, faults: list[FaultPlan]) -> None:
    doc.line("expect:")
    doc.line(f"dag_run: {scalar(run.state)}", 2)
    doc.line("tasks:", 2)
    for task in run.tasks.values():
        doc.line(f"{_key(task.task_id)}: {_task_expectation(task)}", 4, _task_note(task))
    if run.mlflow_url:
        _mlflow(doc, run, options, faults)
    else:
        doc.comment(
            "MLflow was not read (no --mlflow-url): params, metrics and the registry are not pinned.", 2
        )
    _logs(doc, run, faults)


def _task_expectation(task: TaskRecord) -> str:
    state = task.state or "none"
    if task.try_number < 1 or state not in ("success", "failed"):
        return scalar(state)
    return f"{{state: {state}, try_number: {task.try_number}}}"


def _task_note(task: TaskRecord) -> str:
    parts = []
    for attempt in task.tries:
        took = f" {attempt.duration:.1f}s" if attempt.duration else ""
        parts.append(f"try {attempt.try_number} {attempt.state}{took}")
    return "production: " + "; ".join(parts) if parts else ""


def _mlflow(doc: _Doc, run: ProductionRun, options: Options, faults: list[FaultPlan]) -> None:
    replayed = reproduced_mlflow_runs(run, faults)
    trained = run.trained
    doc.line("mlflow:", 2)
    skipped = len(run.mlflow_runs) - len(replayed)
    note = f"production logged {len(run.mlflow_runs)}" + (
        f"; {skipped} from a try that the fault ends before the job starts" if skipped else ""
    )
    doc.line(f"runs: {len(replayed)}", 4, note)
    if trained is None:
        return
    doc.comment(f"From MLflow run {trained.run_id} (train_model try {trained.try_number}).", 4)
    if trained.params:
        doc.line("params:", 4)
        for name, value in sorted(trained.params.items()):
            doc.line(f"{_key(name)}: {text_expectation(value)}", 6)
    if trained.metrics:
        doc.line("metrics:", 4)
        doc.comment(
            f"Seeded training: production's value +/- {options.tolerance:g} (a real change moves a\n"
            "metric by at least one test sample's share; see docs/reproduce.md).",
            6,
        )
        for name, value in sorted(trained.metrics.items()):
            doc.line(
                f"{_key(name)}: {metric_expectation(value, options.tolerance)}", 6, f"production: {value!r}"
            )
    pinned = {k: v for k, v in trained.tags.items() if k in PINNED_TAGS or k.startswith(PINNED_TAG_PREFIXES)}
    if "gpu.count" in trained.tags:
        pinned["gpu.count"] = ">= 1"
    if pinned:
        doc.line("tags:", 4)
        doc.comment(
            "Ids, data hash and library versions: a different scikit-learn explains different metrics.", 6
        )
        for name, value in sorted(pinned.items()):
            rendered = scalar(value) if name == "gpu.count" else text_expectation(value)
            doc.line(f"{_key(name)}: {rendered}", 6)
    _registry(doc, run, replayed)


def _registry(doc: _Doc, run: ProductionRun, replayed: list[MlflowRecord]) -> None:
    ids = {r.run_id for r in replayed}
    versions = sorted((v for v in run.versions if v.run_id in ids), key=lambda v: v.version)
    trained = run.trained
    own = next((v for v in versions if trained and v.run_id == trained.run_id), None)
    doc.line("registry:", 4)
    doc.comment(
        "The scenario's model starts empty, so its versions count from 1; production's numbers are noted.", 6
    )
    doc.line(f"versions: {len(versions)}", 6, ", ".join(f"production v{v.version}" for v in versions))
    passed = gate_passed(run, own)
    local = versions.index(own) + 1 if own is not None else None
    if passed and local is not None:
        note = f"the gate passed: production moved {CHAMPION} to v{own.version}"  # type: ignore[union-attr]
        doc.line(f"aliases: {{{CHAMPION}: {local}}}", 6, note)
    else:
        now = run.aliases_now.get(CHAMPION)
        where = f"stayed on v{now} in production" if now is not None else "was not set"
        note = f"not moved to this run's version ({CHAMPION} {where})" if own else "no version registered"
        doc.line(f"aliases: {{{CHAMPION}: null}}", 6, note)
    if own is not None and any(k.startswith(GATE_TAG) for k in own.tags):
        doc.line("version_tags:", 6)
        for name, value in sorted(own.tags.items()):
            if name.startswith(GATE_TAG):
                doc.line(f"{_key(name)}: {text_expectation(value)}", 8)


def _logs(doc: _Doc, run: ProductionRun, faults: list[FaultPlan]) -> None:
    unstable = unstable_tokens(run)
    entries: dict[str, list[str]] = {}
    tails: list[tuple[str, str]] = []
    for fault in faults:
        entries.setdefault(fault.task, []).append(f"injected fault: {fault.message}")
    for task in run.tasks.values():
        if task.state != "failed" or not task.tries:
            continue
        text = stable_failure(task.tries[-1].log_tail, unstable)
        if text is not None:
            entries.setdefault(task.task_id, []).append(text)
        else:
            tails.append((task.task_id, task.tries[-1].log_tail))
    if not entries and not tails:
        return
    doc.line("log_contains:", 2)
    doc.comment(
        "A failed task: the job's own failure message from production's last try, cut before\n"
        "run-specific ids. A fault: its message, which proves the replayed failure happened.",
        4,
    )
    for task_id, texts in entries.items():
        rendered = scalar(texts[0]) if len(texts) == 1 else "[" + ", ".join(scalar(t) for t in texts) + "]"
        doc.line(f"{_key(task_id)}: {rendered}", 4)
    for task_id, tail in tails:
        doc.comment(f"{task_id}: no stable failure text to pin; production's last try died of:", 4)
        doc.comment(f"  {failure_line(tail)}", 4)


# --- checks and writing -------------------------------------------------------------------------


def check_no_secrets(text: str, credentials: Credentials) -> None:
    """Fail closed: a scenario that contains a credential's value is never written."""
    leaked = [name for name, value in credentials.secrets() if len(value) >= 6 and value in text]
    if leaked:
        raise ConfigError(
            f"The scenario would contain the value of {', '.join(leaked)}; it was not written.",
            "A production value (conf, tag or log) equals that credential: rotate it, then reproduce again.",
        )


def validate(text: str, output: Path) -> None:
    """The project's own loader must accept the file; else nothing is written."""
    from sandbox.scenarios.loader import parse

    scenario, issues = parse(text, output)
    if issues or scenario is None:
        raise ConfigError(
            f"The scenario for this run does not validate against this checkout ({len(issues)} problem(s)); "
            "it was not written.",
            "Production may run a DAG that differs from dags/ here (a param or task it does not know): "
            "check out the code production ran, or report the problem if it is a bug of sandbox reproduce.",
            detail="\n".join(f"  {i}" for i in issues),
        )


def ensure_writable(output: Path, force: bool) -> None:
    if output.exists() and not force:
        raise ConfigError(f"{output} already exists.", "Pass --force to replace it, or -o another path.")


def write(text: str, output: Path, force: bool) -> Path:
    ensure_writable(output, force)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return output
