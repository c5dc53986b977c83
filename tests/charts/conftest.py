"""Real helm renders of the project-owned charts, the Airflow values as the official chart would see them,
and the pipeline's pod specs built offline from those values (cached per session)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.paths import CHARTS_DIR, DAGS_DIR
from sandbox.tools import find_tool
from tests.support import missing

OWNED = ("postgres", "s3", "mlflow", "platform")
OVERLAYS = ("sandbox", "sandbox-gpu")
VALUE_SETS = ("production", *OVERLAYS)
S3_FLAVOURS = ("seaweedfs", "localstack", "minio")
NAMESPACE = "mlops"
PROBE = Path(__file__).resolve().parents[1] / "pipeline" / "dag_probe.py"
# Every rendered variant: each chart under each values set, and the s3 chart once per flavour.
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    (chart, value_set, (f"flavour={flavour}",) if chart == "s3" else ())
    for chart in OWNED
    for value_set in VALUE_SETS
    for flavour in (S3_FLAVOURS if chart == "s3" else ("",))
]


def case_id(case: tuple[str, str, tuple[str, ...]]) -> str:
    chart, value_set, sets = case
    return "-".join([chart, value_set, *(s.split("=", 1)[1] for s in sets)])


def values_files(chart: str, value_set: str) -> list[Path]:
    files = [CHARTS_DIR / chart / "values.yaml"]
    if value_set != "production":
        files.append(CHARTS_DIR / chart / f"values-{value_set}.yaml")
    return files


def merge_values(base: Any, overlay: Any) -> Any:
    """helm's values merge: maps merge key by key, anything else (lists included) replaces, null deletes."""
    if not (isinstance(base, dict) and isinstance(overlay, dict)):
        return copy.deepcopy(overlay)
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_values(out[key], value) if key in out else copy.deepcopy(value)
    return out


def airflow_values(value_set: str, extra: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The Airflow chart's values as helm would merge them for ``value_set`` (plus generated files)."""
    out: dict[str, Any] = {}
    for path in values_files("airflow", value_set):
        out = merge_values(out, yaml.safe_load(path.read_text()) or {})
    for doc in extra:
        out = merge_values(out, doc)
    return out


def dag_env(values: dict[str, Any], component: str = "scheduler") -> dict[str, str]:
    """The DAG deployment config a component's containers get (the chart's global `env` + its own)."""
    items = [*values.get("env", []), *values.get(component, {}).get("env", [])]
    return {item["name"]: str(item["value"]) for item in items}


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    found = find_tool("helm")
    if found is None:
        missing("helm is not installed (PATH or .tools/bin): run `bash .ci/install-helm`")
    return found


Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def render(helm_bin: Path) -> Render:
    """``render(chart, value_set, sets=(), extra_values=())`` -> the rendered objects (``helm template``)."""
    cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def _render(
        chart: str, value_set: str, sets: Sequence[str] = (), extra_values: Sequence[Path] = ()
    ) -> list[dict[str, Any]]:
        key = (chart, value_set, tuple(sets), tuple(str(p) for p in extra_values))
        if key not in cache:
            argv = [str(helm_bin), "template", chart, str(CHARTS_DIR / chart), "--namespace", NAMESPACE]
            for f in [*values_files(chart, value_set), *extra_values]:
                argv += ["--values", str(f)]
            for item in sets:
                argv += ["--set", item]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
            assert out.returncode == 0, out.stderr
            cache[key] = [d for d in yaml.safe_load_all(out.stdout) if d]
        return cache[key]

    return _render


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``(kind/name, pod spec)`` of every workload."""
    out = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            out.append((f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]))
    return out


@pytest.fixture(scope="session")
def pipeline_pods(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, Any]]]:
    """value set -> task id -> the V1Pod (as JSON) the real provider builds offline from that values set's
    DAG deployment config (``KubernetesPodOperator.build_pod_request_obj``, tests/pipeline/dag_probe.py)."""
    root = tmp_path_factory.mktemp("pipeline-pods")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW"))}
    procs = {}
    for value_set in VALUE_SETS:
        env = {**base, **dag_env(airflow_values(value_set)), "AIRFLOW_HOME": str(root / value_set),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}  # fmt: skip
        out = root / f"{value_set}.json"
        proc = subprocess.Popen(
            [sys.executable, str(PROBE), str(DAGS_DIR), str(out)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        procs[value_set] = (proc, out)
    result = {}
    for value_set, (proc, out) in procs.items():
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"DAG probe ({value_set}) failed:\n{output[-4000:]}"
        parsed = json.loads(out.read_text())
        assert parsed["import_errors"] == {}, parsed["import_errors"]
        result[value_set] = {tid: task["pod"] for tid, task in parsed["tasks"].items()}
    return result
