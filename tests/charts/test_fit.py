"""Everything the sandbox deploys, plus the largest pipeline pod, fits a laptop's kind node.

Requests are what the scheduler places by: the sum over every pod the sandbox overlay deploys (project
charts rendered by helm; the official Airflow chart's components from its values, since it cannot be
rendered here), kind's own system pods, and the largest pipeline pod (built offline by the real provider from
the overlay's DAG deployment config: the DAG runs one task at a time) must fit the node below, documented in
docs/kind.md ("Fit"). A pod's request is max(sum of its containers, largest init container).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from kubernetes.utils import parse_quantity

from tests.charts.conftest import OVERLAYS, OWNED, Render, airflow_values, pod_specs

# A laptop's kind node (Docker Desktop's default VM is about this size): allocatable CPU and memory.
NODE = {"cpu": parse_quantity("4"), "memory": parse_quantity("8Gi")}
# kind's control plane and add-ons on that node (kubeadm static pods and kind's manifests): apiserver 250m,
# controller-manager 200m, scheduler 100m, etcd 100m/100Mi, coredns 2 x 100m/70Mi, kindnet 100m/50Mi.
KIND_SYSTEM = {"cpu": parse_quantity("950m"), "memory": parse_quantity("290Mi")}
# The official chart's components this platform runs (LocalExecutor: no workers, no redis, no statsd).
AIRFLOW_COMPONENTS = ("apiServer", "scheduler", "dagProcessor", "triggerer")


def _requests(container: dict[str, Any]) -> dict[str, Decimal]:
    req = (container.get("resources") or {}).get("requests") or {}
    return {r: parse_quantity(req.get(r, "0")) for r in ("cpu", "memory")}


def pod_requests(spec: dict[str, Any]) -> dict[str, Decimal]:
    main = [_requests(c) for c in spec.get("containers", [])]
    init = [_requests(c) for c in spec.get("initContainers") or []]
    return {r: max(sum((c[r] for c in main), Decimal(0)), *(c[r] for c in init), Decimal(0)) for r in NODE}


def _fmt(q: dict[str, Decimal]) -> str:
    return f"cpu {float(q['cpu']):.2f}, memory {float(q['memory']) / 2**30:.2f} GiB"


def sandbox_pods(
    render: Render, pipeline_pods: dict[str, Any], overlay: str
) -> dict[str, dict[str, Decimal]]:
    pods = {"kind system pods": dict(KIND_SYSTEM)}
    for chart in OWNED:
        for where, spec in pod_specs(render(chart, overlay)):
            pods[f"{chart}: {where}"] = pod_requests(spec)
    values = airflow_values(overlay)
    for component in AIRFLOW_COMPONENTS:
        comp = values[component]
        spec = {"containers": [{"resources": comp.get("resources")}],
                "initContainers": comp.get("extraInitContainers", [])}  # fmt: skip
        pods[f"airflow: {component}"] = pod_requests(spec)
    task, pod = max(pipeline_pods[overlay].items(), key=lambda kv: pod_requests(kv[1]["spec"])["memory"])
    pods[f"pipeline: {task}"] = pod_requests(pod["spec"])
    return pods


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sandbox_fits_a_laptop_node(render: Render, pipeline_pods: dict[str, Any], overlay: str) -> None:
    pods = sandbox_pods(render, pipeline_pods, overlay)
    total = {r: sum((p[r] for p in pods.values()), Decimal(0)) for r in NODE}
    table = "\n".join(f"  {name}: {_fmt(q)}" for name, q in pods.items())
    print(f"\n{overlay}: requests {_fmt(total)} of a node with {_fmt(NODE)}\n{table}")
    for resource in NODE:
        assert total[resource] <= NODE[resource], (
            f"{overlay}: {resource} requests {total[resource]} exceed the node's {NODE[resource]}:\n{table}"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pipeline_pod_limit_fits_the_node(pipeline_pods: dict[str, Any], overlay: str) -> None:
    for task, pod in pipeline_pods[overlay].items():
        for c in pod["spec"]["containers"]:
            limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
            assert limit is None or parse_quantity(limit) <= NODE["memory"], (task, c["name"], limit)


def test_production_step_sizes_are_unchanged(pipeline_pods: dict[str, Any]) -> None:
    """The chart sets production's step sizes to what the DAG always used."""
    base = {t: next(c for c in p["spec"]["containers"] if c["name"] == "base")["resources"]
            for t, p in pipeline_pods["production"].items()}  # fmt: skip
    small = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}
    assert base == {"preprocess_data": small, "evaluate_and_register": small,
                    "train_model": {"requests": {"cpu": "2", "memory": "8Gi"},
                                    "limits": {"cpu": "4", "memory": "16Gi"}}}  # fmt: skip
