"""A chart change reaches the local stack: a production value changed in a scratch copy of ``charts/``
makes the built-in happy-path scenario fail, for the reason that change implies. Real local stacks
(slow): one per test, on the changed charts."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox import paths
from sandbox.backends.local.backend import LocalBackend
from sandbox.scenarios.loader import load
from sandbox.scenarios.runner import Platform, Runner, ScenarioResult

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
HAPPY_PATH = paths.SCENARIOS_DIR / "happy_path.yaml"


def changed_charts(tmp_path: Path, chart: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of ``charts/`` whose production ``<chart>/values.yaml`` went through ``change``."""
    charts = tmp_path / "charts"
    shutil.copytree(paths.CHARTS_DIR, charts)
    values_file = charts / chart / "values.yaml"
    values = yaml.safe_load(values_file.read_text())
    change(values)
    values_file.write_text(yaml.safe_dump(values, sort_keys=False))
    return charts


def run_happy_path(charts: Path, tmp_path: Path, name: str) -> ScenarioResult:
    backend = LocalBackend(f"{name}-{os.getpid()}", charts_dir=charts, state_root=tmp_path / "state")
    try:
        backend.up()
        return Runner(Platform(backend)).run(load(HAPPY_PATH).scenario, HAPPY_PATH)
    finally:
        backend.down(purge=True)


def test_mlflow_artifact_proxy_turned_off_fails_the_artifact_expectation(tmp_path: Path) -> None:
    """charts/mlflow ``artifacts.serveArtifacts: false``: MLflow hands clients the bucket itself
    (--default-artifact-root), so the run is not proxied; everything else still passes."""

    def proxy_off(values: dict[str, Any]) -> None:
        values["artifacts"]["serveArtifacts"] = False

    result = run_happy_path(changed_charts(tmp_path, "mlflow", proxy_off), tmp_path, "proxy-off")
    text = result.failure_text()
    print(text)  # the reason, for the record (pytest -rP)
    assert result.verdict == "failed", text
    mismatches = [m for run in result.runs for m in run.mismatches]
    assert mismatches, text
    assert {m.path for m in mismatches} <= {
        "expect.mlflow.artifacts.proxied",
        "expect.mlflow.artifacts.model_files",
    }
    proxied = [m for m in mismatches if m.path == "expect.mlflow.artifacts.proxied"]
    assert proxied and all("s3://mlflow-artifacts/" in m.actual for m in proxied), text


def test_airflow_task_timeout_in_config_fails_the_first_task(tmp_path: Path) -> None:
    """charts/airflow ``config.core.default_task_execution_timeout: 1``: every task is killed after a
    second, so the scenario stops at the first task that needs longer (train_model at the latest: its
    MLflow logging alone takes seconds; a warm preprocess job can finish within the second) with
    Airflow's timeout in the log."""

    def one_second_tasks(values: dict[str, Any]) -> None:
        values["config"]["core"]["default_task_execution_timeout"] = 1

    result = run_happy_path(changed_charts(tmp_path, "airflow", one_second_tasks), tmp_path, "timeout")
    text = result.failure_text()
    print(text)  # the reason, for the record (pytest -rP)
    assert result.verdict == "error", text
    assert re.search(r"task (preprocess_data|train_model) failed unexpectedly \(try 1", text), text
    assert "AirflowTaskTimeout" in text, text


def test_a_running_stack_with_other_values_is_restarted_not_reused(tmp_path: Path) -> None:
    """A warm stack must run what the charts say now (one service, so it takes seconds)."""
    from sandbox.backends.local.objectstore import missing_buckets

    charts = changed_charts(tmp_path, "s3", lambda values: None)
    backend = LocalBackend(
        f"warm-{os.getpid()}", charts_dir=charts, services=["s3"], state_root=tmp_path / "state"
    )
    try:
        backend.up()
        assert backend.up().reused
        first_pid = backend.status()[0].pid
        values_file = charts / "s3" / "values.yaml"
        values = yaml.safe_load(values_file.read_text())
        values["buckets"].append("added-by-a-chart-change")
        values_file.write_text(yaml.safe_dump(values, sort_keys=False))
        again = backend.up()
        assert not again.reused
        assert backend.status()[0].pid != first_pid  # a fresh server
        assert missing_buckets(again.endpoints.s3_url, values["buckets"]) == []
    finally:
        backend.down(purge=True)
