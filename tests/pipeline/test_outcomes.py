"""A failed quality gate is final in every task runtime; any other failure keeps its retries.

Offline: the local runtime runs real subprocesses; the Kubernetes path gets a constructed ``V1Pod``
status (no API server exists here: the operator's cluster calls around the exit-code check are
replaced by no-ops, and the test says so).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s

from .conftest import DAGS_DIR, JOBS_DIR

sys.path.insert(0, str(DAGS_DIR))
sys.path.insert(0, str(JOBS_DIR))
from mlops_jobs import exitcodes
from mlops_pipeline import outcomes
from mlops_pipeline.operators import LocalJobOperator
from mlops_pipeline.pod import JobPodOperator, container_exit_code


def test_the_dag_and_the_jobs_agree_on_the_gate_exit_code() -> None:
    assert outcomes.GATE_FAILED_EXIT_CODE == exitcodes.GATE_FAILED
    assert outcomes.is_final(exitcodes.GATE_FAILED)
    assert not any(outcomes.is_final(c) for c in (None, exitcodes.FAILED, exitcodes.CONFIG_ERROR, 137))


def _local_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> LocalJobOperator:
    for kind, name in (("configmaps", "platform"), ("secrets", "platform")):
        (tmp_path / kind).mkdir(exist_ok=True)
        (tmp_path / kind / f"{name}.json").write_text(json.dumps({}))
    monkeypatch.setenv("MLOPS_LOCAL_PLATFORM_DIR", str(tmp_path))
    script = f"import sys; print('the job says why'); sys.exit({code})"
    return LocalJobOperator(
        task_id=f"exits_{code}", args=["-c", script], env={}, platform_configmap="platform",
        platform_secret="platform", secret_keys=[],
    )  # fmt: skip


def test_local_runtime_fails_a_rejected_gate_without_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AirflowFailException, match=r"exited with 3: the job says why.*not retried"):
        _local_job(tmp_path, monkeypatch, exitcodes.GATE_FAILED).execute({})


def test_local_runtime_keeps_the_retry_for_any_other_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AirflowException, match="exited with 1: the job says why") as raised:
        _local_job(tmp_path, monkeypatch, exitcodes.FAILED).execute({})
    assert not isinstance(raised.value, AirflowFailException)


def _pod(phase: str, exit_code: int | None) -> k8s.V1Pod:
    state = (
        k8s.V1ContainerState(running=k8s.V1ContainerStateRunning())
        if exit_code is None
        else k8s.V1ContainerState(
            terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code, message="quality gate failed")
        )
    )
    base = k8s.V1ContainerStatus(
        name="base", state=state, ready=False, restart_count=0, image="mlops-jobs", image_id=""
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="mlops-evaluate-and-register", namespace="mlops"),
        status=k8s.V1PodStatus(phase=phase, container_statuses=[base]),
    )


@pytest.fixture
def pod_operator(monkeypatch: pytest.MonkeyPatch) -> JobPodOperator:
    op = JobPodOperator(task_id="evaluate_and_register", name="mlops-evaluate-and-register",
                        image="mlops-jobs:test", do_xcom_push=False)  # fmt: skip
    # Stand-ins for the Kubernetes API calls cleanup makes (read the pod for istio, patch labels, read
    # events, delete the pod): there is no API server here, and they do not decide the outcome.
    for call in ("patch_already_checked", "process_pod_deletion", "_read_pod_container_states",
                 "_read_pod_events"):  # fmt: skip
        monkeypatch.setattr(op, call, lambda *a, **k: None)
    monkeypatch.setattr(op, "is_istio_enabled", lambda pod: False)
    return op


def test_pod_runtime_fails_a_rejected_gate_without_a_retry(pod_operator: JobPodOperator) -> None:
    pod = _pod("Failed", exitcodes.GATE_FAILED)
    assert container_exit_code(pod, "base") == 3
    final = r"(?s)returned a failure.*quality gate failed.*not retried"  # the termination message too
    with pytest.raises(AirflowFailException, match=final):
        pod_operator.cleanup(pod, pod)


@pytest.mark.parametrize("exit_code", [exitcodes.FAILED, 137])
def test_pod_runtime_keeps_the_retry_for_any_other_failure(
    pod_operator: JobPodOperator, exit_code: int
) -> None:
    pod = _pod("Failed", exit_code)
    with pytest.raises(AirflowException, match="returned a failure") as raised:
        pod_operator.cleanup(pod, pod)
    assert not isinstance(raised.value, AirflowFailException)


def test_pod_runtime_passes_a_succeeded_pod(pod_operator: JobPodOperator) -> None:
    pod = _pod("Succeeded", 0)
    pod_operator.cleanup(pod, pod)
    assert container_exit_code(_pod("Running", None), "base") is None


def test_a_job_leaves_its_message_for_the_kubelet_only_in_a_pod(tmp_path: Path) -> None:
    from mlops_jobs.__main__ import termination_message

    log = tmp_path / "termination-log"
    termination_message("quality gate failed: accuracy 0.5 is below threshold 0.8", log)
    assert not log.exists()  # outside a pod the kubelet's file is absent: nothing is created
    log.touch()
    termination_message("quality gate failed: accuracy 0.5 is below threshold 0.8", log)
    assert log.read_text() == "quality gate failed: accuracy 0.5 is below threshold 0.8"
