"""Faults on kind, offline: the cluster policy in the generated Airflow values, the capabilities, and the
exact `kubectl scale` commands of service faults (nothing is executed; no cluster exists here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox import paths
from sandbox.backends.kind import faults, helm
from sandbox.backends.kind.backend import KindBackend
from sandbox.backends.kind.plan import Step, plan
from sandbox.errors import ConfigError
from sandbox.platform import airflow_local_settings
from sandbox.stack import SERVICE_NAMES, ServiceFaults


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path))


@pytest.mark.parametrize("gpu", [False, True])
def test_generated_airflow_values_carry_the_cluster_policy(gpu: bool) -> None:
    step = next(s for s in plan("dev", gpu=gpu) if s.key == "helm:airflow")
    (content,) = step.files.values()
    generated = yaml.safe_load(content)
    policy = Path(airflow_local_settings.__file__).read_text()
    assert generated["airflowLocalSettings"] == policy
    # The official chart renders this value through `tpl`: the text must hold no template.
    assert "{{" not in policy
    keys = yaml.safe_load((paths.CHARTS_DIR / "overlay-keys.yaml").read_text())["airflow"]
    assert "airflowLocalSettings" in keys["sandbox-gpu" if gpu else "sandbox"]


def test_a_policy_with_a_template_marker_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "airflow_local_settings.py"
    bad.write_text('GREETING = "{{ hello }}"\n')
    monkeypatch.setattr(airflow_local_settings, "__file__", str(bad))
    with pytest.raises(ConfigError, match="tpl"):
        helm.cluster_policy()


@pytest.mark.parametrize("gpu", [False, True])
def test_kind_offers_task_and_service_faults(gpu: bool) -> None:
    backend = KindBackend("dev", gpu=gpu)
    assert {"faults", "service_faults", "kubernetes"} <= backend.capabilities()
    assert ("gpu" in backend.capabilities()) == gpu
    assert isinstance(backend, ServiceFaults)
    assert backend.revive() == []  # the kubelet restarts what exits


def test_every_service_maps_to_a_workload() -> None:
    assert set(faults.WORKLOADS) == set(SERVICE_NAMES)


def test_stop_scales_to_zero_and_restore_scales_back_and_waits() -> None:
    ran: list[Step] = []
    control = KindBackend("dev").service_control("mlflow")
    control._run = ran.append  # type: ignore[attr-defined]  # record instead of executing
    control.inject("stop")
    control.restore("stop")
    base = ("--context", "kind-mlops-dev", "--namespace", "mlops")
    assert [s.argv[1:] for s in ran] == [
        (*base, "scale", "deployment/mlflow", "--replicas=0"),
        (*base, "scale", "deployment/mlflow", "--replicas=1"),
        (*base, "rollout", "status", "deployment/mlflow", "--timeout=5m"),
    ]
    steps = faults.inject_steps("kubectl", "ctx", "airflow-triggerer", "unavailable")
    assert steps[0].argv == ("kubectl", "--context", "ctx", "--namespace", "mlops", "scale",
                             "statefulset/airflow-triggerer", "--replicas=0")  # fmt: skip


@pytest.mark.parametrize("action", ["kill", "pause"])
def test_kill_and_pause_are_not_offered_on_kind(action: str) -> None:
    control = KindBackend("dev").service_control("postgres")
    assert action not in control.actions
    with pytest.raises(ConfigError, match=f"cannot '{action}'"):
        faults.inject_steps("kubectl", "ctx", "postgres", action)


def test_an_unknown_service_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="airflow-scheduler"):
        KindBackend("dev").service_control("redis")
