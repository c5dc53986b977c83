"""The GPU overlay's train pod, as the real provider builds it offline from that overlay's DAG deployment
config, runs on the RuntimeClass the kind plan registers (nvkind's `nvidia`) and asks for one GPU."""

from __future__ import annotations

from typing import Any

import yaml

from sandbox.backends.kind import cluster


def test_gpu_train_pod_uses_the_registered_runtime_class(pipeline_pods: dict[str, Any]) -> None:
    registered = yaml.safe_load(cluster.runtime_class_manifest())["metadata"]["name"]
    train = pipeline_pods["sandbox-gpu"]["train_model"]["spec"]
    assert train["runtimeClassName"] == registered == "nvidia"
    (base,) = [c for c in train["containers"] if c["name"] == "base"]
    assert base["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert train["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    for value_set in ("production", "sandbox"):
        assert "runtimeClassName" not in pipeline_pods[value_set]["train_model"]["spec"], value_set
    others = ("preprocess_data", "evaluate_and_register")
    assert all("runtimeClassName" not in pipeline_pods["sandbox-gpu"][t]["spec"] for t in others)
