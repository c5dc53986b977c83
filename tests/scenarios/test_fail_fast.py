"""Validating a change before merge: a DAG that does not import, or a job that crashes, fails the
scenario at once with the real error, not a timeout. Real local stack (slow). How fast is measured
by benchmarks, not asserted here: the asserts are on what ended the scenario.

The stack serves a temporary copy of ``dags/`` (LocalBackend's ``dags_folder``), with two changes a
developer could make: a second DAG file whose import fails, and a DAG copy whose steps run a
temporary copy of ``jobs/`` in which preprocess crashes.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import paths
from sandbox.scenarios import dags as dag_registry
from sandbox.scenarios.loader import load

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CRASH = "simulated regression in preprocess"


def _broken_dag(source: str) -> str:
    """The production DAG under another id, with an import that fails (e.g. a missing dependency)."""
    out = source.replace('DAG_ID = "train_model_pipeline"', 'DAG_ID = "train_model_pipeline_broken"')
    out = out.replace(
        "from airflow.sdk import", "import no_such_module_added_by_a_change\nfrom airflow.sdk import", 1
    )
    assert "no_such_module" in out and "train_model_pipeline_broken" in out, (
        "the DAG file changed; update this test"
    )
    return out


def _crashing_dag(source: str) -> str:
    out = source.replace('DAG_ID = "train_model_pipeline"', 'DAG_ID = "train_model_pipeline_crashing"')
    assert out != source
    return out


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("failfast")
    dags = root / "dags"
    shutil.copytree(paths.DAGS_DIR, dags, ignore=shutil.ignore_patterns("__pycache__"))
    source = (paths.DAGS_DIR / "train_model_pipeline.py").read_text()
    (dags / "train_model_pipeline_broken.py").write_text(_broken_dag(source))
    # The crashing variant runs a changed copy of jobs/: its steps' env puts that copy first on
    # PYTHONPATH (the operator overlays a step's env on the worker's).
    jobs = root / "jobs"
    shutil.copytree(paths.JOBS_DIR, jobs, ignore=shutil.ignore_patterns("__pycache__"))
    pre = jobs / "mlops_jobs" / "preprocess.py"
    pre_src = pre.read_text()
    crash = f"    raise RuntimeError({CRASH!r})"
    pre.write_text(pre_src.replace("    cfg = PreprocessConfig.from_env(env)", crash, 1))
    assert CRASH in pre.read_text(), "preprocess.run() changed shape; update this test"
    pkg = dags / "mlops_pipeline_crashing"
    shutil.copytree(dags / "mlops_pipeline", pkg)
    steps = pkg / "steps.py"
    steps_src = steps.read_text()
    patched = steps_src.replace("RUN_ENV = {", f"RUN_ENV = {{\n    'PYTHONPATH': {str(jobs)!r},", 1)
    assert patched != steps_src, "steps.py no longer defines RUN_ENV = {...}; update this test"
    steps.write_text(patched)
    crashing = _crashing_dag(source).replace("from mlops_pipeline.", "from mlops_pipeline_crashing.")
    (dags / "train_model_pipeline_crashing.py").write_text(crashing)
    return root


@pytest.fixture(scope="module")
def platform(workspace: Path) -> Iterator[object]:
    from sandbox.scenarios.runner import Platform
    from sandbox.stack import get_backend

    backend = get_backend("local", f"failfast-{os.getpid()}", dags_folder=workspace / "dags")
    backend.up()
    try:
        yield Platform(backend)
    finally:
        backend.down(purge=True)


def _scenario(workspace: Path, text: str):
    path = workspace / "scenarios" / "case.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return load(path, registry=dag_registry.scan(workspace / "dags")).scenario


def test_a_dag_that_does_not_import_fails_at_once_with_the_import_error(workspace: Path, platform) -> None:
    from sandbox.scenarios.runner import Runner

    sc = _scenario(
        workspace,
        "apiVersion: mlops-sandbox/v1\nname: broken\ndag: train_model_pipeline_broken\n"
        "timeout: 300\nexpect: {dag_run: success}\n",
    )
    result = Runner(platform).run(sc)
    assert result.verdict == "error"
    text = result.failure_text()
    assert "does not import (Airflow import error)" in text
    assert "ModuleNotFoundError: No module named 'no_such_module_added_by_a_change'" in text
    assert "did not appear in Airflow" not in text  # not the DAG-appearance deadline
    assert result.runs == []  # nothing was triggered


def test_a_job_that_crashes_fails_the_scenario_within_seconds_with_its_traceback(
    workspace: Path, platform
) -> None:
    from sandbox.scenarios.runner import Runner

    sc = _scenario(
        workspace,
        "apiVersion: mlops-sandbox/v1\nname: crash\ndag: train_model_pipeline_crashing\n"
        "timeout: 300\nexpect: {dag_run: success}\n",
    )
    result = Runner(platform).run(sc)
    assert result.verdict == "error"
    text = result.failure_text()
    # Fail fast: ended by the first failed try, not by the scenario timeout and not after the retry.
    assert re.search(r"task preprocess_data failed unexpectedly \(try 1, dag_run_id sbx__\S+\)", text), text
    assert f"RuntimeError: {CRASH}" in text
    assert "after the scenario timeout" not in text
    dag_run_id = re.search(r"dag_run_id (sbx__\S+)\)", text).group(1)  # type: ignore[union-attr]
    # The abandoned run is marked failed so its retry does not hold the DAG's only active slot.
    deadline = time.monotonic() + 120  # a hang guard: the runner marks it failed before returning
    while platform.airflow.dag_run_state("train_model_pipeline_crashing", dag_run_id) != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.5)
