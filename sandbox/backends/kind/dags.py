"""DAG delivery on an existing cluster (``--context``): a ConfigMap generated from ``dags/``.

kind nodes get the repo's ``dags/`` by an extraMount (the overlay's hostPath: edits apply at once). Another
cluster has no such path, and no registry push is wanted, so the harness applies a ConfigMap holding every
file of ``dags/`` and the Airflow components that parse DAGs copy it into their DAG folder at start:

- ConfigMap keys cannot contain ``/``: each file gets a flat key and an ``items`` path restoring the tree.
- It is copied by an init container, not mounted as the DAG folder: the kubelet lays a ConfigMap volume out
  as ``..data`` and ``..<timestamp>`` directories behind symlinks, and Airflow's DAG folder walk follows
  symlinks and stops with "Detected recursive loop" when two of them resolve to the same directory.
- A pod annotation carries the files' hash, so ``helm upgrade`` rolls the pods when a DAG file changes.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import ConfigError

CONFIGMAP = "mlops-dags"
SOURCE_PATH = "/opt/airflow/dags-src"  # where the ConfigMap is mounted (read-only)
DAGS_PATH = "/opt/airflow/dags"  # the chart's DAG folder without git-sync or persistence
COMPONENTS = ("dagProcessor", "scheduler", "triggerer")  # what parses DAG files (LocalExecutor: scheduler)
MAX_BYTES = 900 * 1024  # a ConfigMap holds at most 1 MiB, keys and metadata included
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
# Copies the tree the items paths describe, skipping the kubelet's `..data`/`..<timestamp>` entries.
COPY_SCRIPT = (
    "import shutil, sys; "
    "shutil.copytree(sys.argv[1], sys.argv[2], ignore=shutil.ignore_patterns('..*'), dirs_exist_ok=True)"
)


def files(dags_dir: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under ``dags_dir`` (no caches, no byte code)."""
    out = {}
    for path in sorted(p for p in dags_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(dags_dir)
        if _SKIP_DIRS.intersection(rel.parts) or path.suffix in (".pyc", ".pyo"):
            continue
        out[rel.as_posix()] = path.read_bytes()
    return out


def key(rel_path: str) -> str:
    """A ConfigMap key for a relative path (``[-._a-zA-Z0-9]+``): ``/`` becomes ``--``."""
    return rel_path.replace("/", "--")


def content_hash(tree: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for rel, data in sorted(tree.items()):
        digest.update(rel.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:12]


def configmap_manifest(dags_dir: Path, *, namespace: str) -> str:
    """The ConfigMap with every DAG file; ConfigError when the folder cannot fit in one."""
    tree = files(dags_dir)
    keys = [key(rel) for rel in tree]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"Two files under {dags_dir} map to the same ConfigMap key.", "Rename one of them.")
    size = sum(len(k) + len(v) for k, v in zip(keys, tree.values(), strict=True))
    if size > MAX_BYTES:
        raise ConfigError(
            f"{dags_dir} holds {size} bytes: more than a ConfigMap can carry ({MAX_BYTES}).",
            "Deliver DAGs by git-sync (the production values) or an image on this cluster.",
        )
    text = {k: v.decode() for k, v in zip(keys, tree.values(), strict=True)}
    doc = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "mlops-platform"}},
        "data": text,
    }  # fmt: skip
    return yaml.safe_dump(doc, sort_keys=False)


def airflow_values(dags_dir: Path, airflow_image: str) -> dict[str, dict[str, Any]]:
    """Per DAG-parsing component: the ConfigMap volume, a writable DAG folder, the copying init container."""
    tree = files(dags_dir)
    items = [{"key": key(rel), "path": rel} for rel in tree]
    volumes = [
        {"name": "mlops-dags-src", "configMap": {"name": CONFIGMAP, "items": items}},
        {"name": "mlops-dags", "emptyDir": {}},
    ]
    init = {
        "name": "copy-dags",
        "image": airflow_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-c", COPY_SCRIPT, SOURCE_PATH, DAGS_PATH],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [{"name": "mlops-dags-src", "mountPath": SOURCE_PATH, "readOnly": True},
                         {"name": "mlops-dags", "mountPath": DAGS_PATH}],
    }  # fmt: skip
    component = {
        "extraVolumes": volumes,
        "extraVolumeMounts": [{"name": "mlops-dags", "mountPath": DAGS_PATH, "readOnly": True}],
        "extraInitContainers": [init],
        "podAnnotations": {"mlops.io/dags-hash": content_hash(tree)},
    }
    return {name: copy.deepcopy(component) for name in COMPONENTS}  # no shared objects: no YAML anchors
