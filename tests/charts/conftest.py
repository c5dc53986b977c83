"""Real helm renders of the project-owned charts, cached per session (each chart x values set once)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.paths import CHARTS_DIR
from sandbox.tools import find_tool
from tests.support import missing

OWNED = ("postgres", "s3", "mlflow", "platform")
OVERLAYS = ("sandbox", "sandbox-gpu")
VALUE_SETS = ("production", *OVERLAYS)
NAMESPACE = "mlops"


def values_files(chart: str, value_set: str) -> list[Path]:
    files = [CHARTS_DIR / chart / "values.yaml"]
    if value_set != "production":
        files.append(CHARTS_DIR / chart / f"values-{value_set}.yaml")
    return files


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    found = find_tool("helm")
    if found is None:
        missing("helm is not installed (PATH or .tools/bin): run `bash .ci/install-helm`")
    return found


@pytest.fixture(scope="session")
def render(helm_bin: Path) -> Callable[[str, str], list[dict[str, Any]]]:
    """``render(chart, value_set)`` -> the manifest's objects (``helm template``, parsed with pyyaml)."""
    cache: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def _render(chart: str, value_set: str) -> list[dict[str, Any]]:
        key = (chart, value_set)
        if key not in cache:
            argv = [str(helm_bin), "template", chart, str(CHARTS_DIR / chart), "--namespace", NAMESPACE]
            for f in values_files(chart, value_set):
                argv += ["--values", str(f)]
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
