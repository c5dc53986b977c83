"""Schedules on kind, offline: the exact `kubectl set env` / `rollout status` commands a `trigger: schedule`
scenario runs, and the marker `up` uses to turn them off after an interrupted one (no cluster exists
here: the commands are recorded, not run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox import paths
from sandbox.backends.kind import schedules
from sandbox.backends.kind.backend import KindBackend
from sandbox.backends.kind.plan import Step
from sandbox.stack import USE_JOB_SCHEDULE_ENV, Schedules


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path))


def test_the_variable_is_airflows_name_for_the_overlays_key() -> None:
    """The variable overrides the very key the overlays turn off (Airflow's AIRFLOW__SECTION__KEY)."""
    for overlay in ("values-local.yaml", "values-sandbox.yaml", "values-sandbox-gpu.yaml"):
        config = yaml.safe_load((paths.CHARTS_DIR / "airflow" / overlay).read_text())["config"]
        assert config["scheduler"]["use_job_schedule"] is False, overlay
    section, key = "scheduler", "use_job_schedule"
    assert f"AIRFLOW__{section.upper()}__{key.upper()}" == USE_JOB_SCHEDULE_ENV


def test_schedules_on_and_off_set_and_remove_the_schedulers_variable_and_wait_for_the_rollout() -> None:
    base = ["kubectl", "--context", "kind-dev", "--namespace", "mlops"]
    on, wait = schedules.steps("kubectl", "kind-dev", True)
    assert list(on.argv) == [*base, "set", "env", "deployment/airflow-scheduler", "--containers=scheduler",
                             f"{USE_JOB_SCHEDULE_ENV}=True"]  # fmt: skip
    assert list(wait.argv) == [*base, "rollout", "status", "deployment/airflow-scheduler", "--timeout=5m"]
    off, wait_off = schedules.steps("kubectl", "kind-dev", False)
    assert list(off.argv)[-1] == f"{USE_JOB_SCHEDULE_ENV}-"  # kubectl's "remove this variable"
    assert wait_off.argv == wait.argv


def test_the_backend_marks_schedules_on_until_they_are_off_again(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = KindBackend("dev")
    assert isinstance(backend, Schedules) and "schedules" in backend.capabilities()
    ran: list[Step] = []
    monkeypatch.setattr(backend, "_run", ran.append)
    backend.set_schedules(True)
    assert backend.schedules_marker.exists()  # `up` turns them off if the scenario never does
    assert ran[0].argv[-1] == f"{USE_JOB_SCHEDULE_ENV}=True"
    backend.set_schedules(False)
    assert not backend.schedules_marker.exists()
    assert ran[2].argv[-1] == f"{USE_JOB_SCHEDULE_ENV}-"


def test_a_failed_rollout_keeps_the_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schedules that may still be on stay marked, so the next `up` removes them."""
    backend = KindBackend("dev")
    monkeypatch.setattr(backend, "_run", lambda step: None)
    backend.set_schedules(True)

    def fail(step: Step) -> None:
        raise RuntimeError("rollout timed out")

    monkeypatch.setattr(backend, "_run", fail)
    with pytest.raises(RuntimeError):
        backend.set_schedules(False)
    assert backend.schedules_marker.exists()
