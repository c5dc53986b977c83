"""The pod policy (tests/charts/policy.py) over everything the platform runs: every rendered workload of
every project chart under each values set (each S3 flavour too), the pipeline's pods as the real provider
builds them offline (xcom sidecar included), and the containers our Airflow values add to the official chart
(which cannot be rendered here: checked at the values level)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sandbox.paths import CHARTS_DIR, DAGS_DIR, JOBS_DIR
from tests.charts import policy
from tests.charts.conftest import CASES, VALUE_SETS, Render, airflow_values, case_id, pod_specs


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_chart_workloads_meet_the_pod_policy(render: Render, case: tuple[str, str, tuple[str, ...]]) -> None:
    chart, value_set, sets = case
    problems = [
        p for where, spec in pod_specs(render(chart, value_set, sets)) for p in policy.violations(where, spec)
    ]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pipeline_pods_meet_the_pod_policy(pipeline_pods: dict[str, Any], value_set: str) -> None:
    problems = [
        p for task_id, pod in pipeline_pods[value_set].items()
        for p in policy.violations(f"Pod/{task_id}", pod["spec"])
    ]  # fmt: skip
    assert problems == [], "\n".join(problems)
    sidecars = [c for pod in pipeline_pods[value_set].values() for c in pod["spec"]["containers"]
                if c["name"] == "airflow-xcom-sidecar"]  # fmt: skip
    assert len(sidecars) == 1, "train_model pushes XCom: the provider adds exactly one sidecar"


def _airflow_pod_spec(values: dict[str, Any], init: list[dict[str, Any]]) -> dict[str, Any]:
    image = f"{values['defaultAirflowRepository']}:{values['defaultAirflowTag']}"
    main = {"name": "airflow", "image": image, "securityContext": values["securityContexts"]["containers"]}
    return {
        "securityContext": values["securityContexts"]["pod"],
        "initContainers": init,
        "containers": [main],
    }


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_airflow_containers_meet_the_pod_policy(value_set: str, tmp_path: Path) -> None:
    """The official chart's pods at the values level: its containers take `securityContexts` and the
    pinned image; ours are the init containers the values (and the harness, on --context) add."""
    from sandbox.backends.kind import dags, helm

    generated = helm.airflow_generated_values(
        CHARTS_DIR / "airflow" / f"values-{helm.overlay_name(value_set == 'sandbox-gpu')}.yaml",
        "mlops-jobs:0123456789ab", dags_dir=tmp_path,
    )  # fmt: skip
    values = airflow_values(value_set, [generated] if value_set != "production" else [])
    problems = []
    for component in ("apiServer", *dags.COMPONENTS):
        init = values.get(component, {}).get("extraInitContainers", [])
        problems += policy.violations(f"airflow/{component}", _airflow_pod_spec(values, init))
    assert problems == [], "\n".join(problems)


def test_job_image_user_is_the_one_the_pods_and_allow_list_assume() -> None:
    (user,) = re.findall(r"^USER\s+(\d+)", (JOBS_DIR / "Dockerfile").read_text(), re.M)
    assert policy.declared_user("mlops-jobs:0123456789ab") == int(user)
    assert f"JOB_UID = {user}" in (DAGS_DIR / "mlops_pipeline" / "build.py").read_text()


def test_policy_catches_root_unpinned_and_unlisted() -> None:
    """The policy itself can fail: a root sidecar, an unpinned image, an unlisted image."""
    spec = {"securityContext": {"runAsNonRoot": True}, "containers": [
        {"name": "base", "image": "mlops-jobs:abc", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}},
        {"name": "sidecar", "image": "alpine:3.24.2"},
        {"name": "latest", "image": "alpine:latest", "securityContext": {"runAsUser": 1}},
        {"name": "unlisted", "image": "busybox:1.37", "securityContext": {"runAsUser": 1}},
    ]}  # fmt: skip
    text = "\n".join(policy.violations("Pod/x", spec))
    assert "Pod/x/base" not in text
    assert "Pod/x/sidecar: no runAsUser" in text and "Pod/x/sidecar: allowPrivilegeEscalation" in text
    assert "alpine:latest is not pinned" in text and "busybox:1.37 is not on the allow-list" in text
