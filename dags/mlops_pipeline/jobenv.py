"""The environment of a job outside Kubernetes: exactly what its pod would get, and nothing else.

A pod gets the platform ConfigMap (``envFrom``), the keys it references in the platform Secret
(``secretKeyRef``), the step's own env, and the image's process environment. Both runtimes without a
cluster use this module: ``docker`` runs the job image, which brings its process environment
(``pod_env``); ``local`` runs a subprocess, which takes it from the worker (``local_job_env``).
Outside a cluster the deployment puts the ConfigMap and the Secret as JSON files under
``$MLOPS_LOCAL_PLATFORM_DIR`` (``configmaps/<name>.json``, ``secrets/<name>.json``): the stand-in for
the Kubernetes API.

Pure (no Airflow import), so it is testable on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

LOCAL_PLATFORM_DIR_ENV = "MLOPS_LOCAL_PLATFORM_DIR"
XCOM_PATH_ENV = "MLOPS_XCOM_PATH"
# What the job image and the OS give a container's process, taken from the worker: the interpreter's
# PATH, HOME, locale and temp dir, the job code's location (the image's PYTHONPATH=/opt/mlops) and
# unbuffered output (the image's PYTHONUNBUFFERED=1). Nothing else of the worker reaches a job.
PROCESS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "PYTHONUNBUFFERED")


class PlatformObjectError(Exception):
    """The platform ConfigMap or Secret is missing or lacks a key (a pod would not start either)."""


def _read(path: Path, what: str) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlatformObjectError(f"cannot read the platform {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise PlatformObjectError(f"the platform {what} {path} is not a JSON object")
    return {str(k): str(v) for k, v in data.items()}


def read_platform_objects(
    folder: str | None, configmap: str, secret: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The data of the ConfigMap and the Secret named in the deployment config."""
    if not folder:
        raise PlatformObjectError(
            f"{LOCAL_PLATFORM_DIR_ENV} is not set: outside Kubernetes the deployment provides the platform "
            "ConfigMap and Secret as files there (docs/architecture.md)"
        )
    root = Path(folder)
    return _read(root / "configmaps" / f"{configmap}.json", "ConfigMap"), _read(
        root / "secrets" / f"{secret}.json", "Secret"
    )


def pod_env(
    step: Mapping[str, object],
    *,
    configmap: Mapping[str, str],
    secret: Mapping[str, str],
    secret_keys: Sequence[str],
) -> dict[str, str]:
    """What the pod spec gives the job container, precedence as in a pod: ``envFrom`` (the ConfigMap)
    < ``env`` (the Secret keys it references, then the step's own). The image adds its process env."""
    env = dict(configmap)
    for key in secret_keys:
        if key not in secret:
            raise PlatformObjectError(f"the platform Secret has no key {key!r} (a pod would not start)")
        env[key] = secret[key]
    env.update({k: str(v) for k, v in step.items()})
    return env


def local_job_env(
    worker: Mapping[str, str],
    step: Mapping[str, object],
    xcom_path: str,
    *,
    configmap: Mapping[str, str],
    secret: Mapping[str, str],
    secret_keys: Sequence[str],
) -> dict[str, str]:
    """A job subprocess's environment: the image's process env taken from the worker, the pod's env,
    and where to write the XCom file."""
    env = {k: worker[k] for k in PROCESS_ENV if k in worker}
    env.update(pod_env(step, configmap=configmap, secret=secret, secret_keys=secret_keys))
    env[XCOM_PATH_ENV] = xcom_path
    return env
