"""Every object the platform deploys, validated against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: unknown fields are errors) for the Kubernetes version of the pinned kind node image: each project
chart under each values set (each S3 flavour), the pipeline's pods built offline, and the manifests the kind
plan applies itself (namespaces, Secrets, RuntimeClass, the DAG ConfigMap)."""

from __future__ import annotations

import re
import warnings
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sandbox.backends.kind.cluster import NODE_IMAGE
from sandbox.backends.kind.plan import plan
from tests.charts.conftest import CASES, VALUE_SETS, Render, case_id


def k8s_version() -> str:
    """The node image's Kubernetes version; the newest schema the installed release ships when newer."""
    match = re.search(r"kindest/node:v(\d+\.\d+)\.\d+", NODE_IMAGE)
    assert match, NODE_IMAGE
    version = match.group(1)
    latest = kubernetes_validate.latest_version()
    if tuple(map(int, version.split("."))) > tuple(map(int, latest.split(".")[:2])):
        warnings.warn(f"kubernetes-validate ships schemas up to {latest}; the node image runs {version}: "
                      f"validating against {latest}", stacklevel=1)  # fmt: skip
        return latest
    return version


def _errors(objects: list[dict[str, Any]]) -> list[str]:
    out = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, k8s_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            out.append(f"{obj['kind']}/{obj['metadata'].get('name')}: {exc.message} at {list(exc.path)}")
    return out


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_rendered_chart_objects_are_valid(render: Render, case: tuple[str, str, tuple[str, ...]]) -> None:
    chart, value_set, sets = case
    assert _errors(render(chart, value_set, sets)) == []


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pipeline_pods_are_valid(pipeline_pods: dict[str, Any], value_set: str) -> None:
    assert _errors(list(pipeline_pods[value_set].values())) == []


@pytest.mark.parametrize(("gpu", "context"), [(False, None), (True, None), (True, "prod-like")])
def test_plan_manifests_are_valid(gpu: bool, context: str | None, monkeypatch: pytest.MonkeyPatch,
                                  tmp_path: Any) -> None:  # fmt: skip
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path))
    docs = [d for step in plan("dev", gpu=gpu, kube_context=context, job_image="r.example/j:1")
            if step.stdin for d in yaml.safe_load_all(step.stdin) if d]  # fmt: skip
    assert {d["kind"] for d in docs} >= {"Namespace", "Secret"}
    assert _errors(docs) == []


def test_schema_check_can_fail() -> None:
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "c", "image": "i", "runAsUser": 1}]}}  # fmt: skip
    assert _errors([bad]), "strict validation must reject a misplaced field"
