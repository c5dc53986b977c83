"""One description per pipeline step, shared by the task runtimes (kubernetes, local, docker).

Env values are Jinja templates rendered by Airflow per task instance: DAG params (overridable by
run conf) and the task's own context (run id, try number).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

JOB_MODULE = "mlops_jobs"
RESOURCES_ENV = "MLOPS_STEP_RESOURCES"
DOCKER_LABELS_ENV = "MLOPS_DOCKER_LABELS"
RUNTIMES = ("kubernetes", "local", "docker")
# The only path a job may write: every runtime that runs the image mounts it writable over a read-only root
# file system (the pod: an emptyDir; docker: a tmpfs). The image's HOME is there too.
SCRATCH_DIR = "/tmp"
# Where a job writes its XCom (the KPO xcom sidecar's volume; the job's default MLOPS_XCOM_PATH).
XCOM_DIR = "/airflow/xcom"


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str

    @classmethod
    def from_spec(cls, step: str, spec: object) -> Resources:
        """From the Kubernetes shape ``{"requests": {"cpu", "memory"}, "limits": {"cpu", "memory"}}``."""
        shaped = isinstance(spec, dict) and set(spec) == {"requests", "limits"}
        parts = [spec[k] for k in ("requests", "limits")] if shaped else []  # type: ignore[index]
        if not shaped or not all(isinstance(p, dict) and set(p) == {"cpu", "memory"} for p in parts):
            raise ValueError(
                f"{RESOURCES_ENV}: step {step!r} must look like "
                '{"requests": {"cpu": "250m", "memory": "512Mi"}, '
                '"limits": {"cpu": "500m", "memory": "1Gi"}}, '
                f"got {spec!r}"
            )
        req, lim = parts
        return cls(str(req["cpu"]), str(lim["cpu"]), str(req["memory"]), str(lim["memory"]))


@dataclass(frozen=True)
class Step:
    """A pipeline step: what runs (job), where (image, resources) and with which inputs (env)."""

    task_id: str
    job: str
    env: Mapping[str, str]
    resources: Resources
    gpu: bool = False
    xcom: bool = False
    image: str = "mlops-jobs:0.1.0"

    @property
    def args(self) -> list[str]:
        """Arguments after the interpreter: the same in the pod and in the local subprocess."""
        return ["-m", JOB_MODULE, self.job]


# Production sizes (charts/airflow/values.yaml sets the same; the sandbox overlays size them down).
SMALL = Resources(cpu_request="250m", cpu_limit="500m", memory_request="512Mi", memory_limit="1Gi")
TRAIN = Resources(cpu_request="2", cpu_limit="4", memory_request="8Gi", memory_limit="16Gi")
DEFAULT_RESOURCES: Mapping[str, Resources] = {"preprocess": SMALL, "train": TRAIN, "evaluate": SMALL}


def _is_true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Deployment:
    """Deployment config read at DAG parse time (docs/architecture.md, "DAG deployment config")."""

    runtime: str = "kubernetes"
    train_gpu: bool = False
    image: str = "mlops-jobs:0.1.0"
    namespace: str = "mlops"
    platform_secret: str = "mlops-platform-credentials"
    platform_configmap: str = "mlops-platform-config"
    retry_delay_seconds: int = 300
    # DAG runs at once: production 1 (a run never overlaps the previous day's); sandboxes raise it so
    # scenarios' runs, and a scenario's concurrent runs, go side by side.
    max_active_runs: int = 1
    # Requests/limits per job (preprocess, train, evaluate); the chart sets production's, overlays size them.
    resources: Mapping[str, Resources] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    # RuntimeClass of GPU pods (e.g. "nvidia" on an nvkind cluster); None: the cluster's default runtime.
    gpu_runtime_class: str | None = None
    # docker runtime: labels added to every job container (e.g. an owner, or a marker to find them by).
    docker_labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Deployment:
        env = os.environ if environ is None else environ
        runtime = env.get("MLOPS_TASK_RUNTIME", "kubernetes").strip().lower()
        if runtime not in RUNTIMES:
            raise ValueError(f"MLOPS_TASK_RUNTIME={runtime!r}: expected one of {', '.join(RUNTIMES)}")
        return cls(
            runtime=runtime,
            train_gpu=_is_true(env.get("MLOPS_TRAIN_GPU", "false")),
            image=env.get("MLOPS_JOB_IMAGE", cls.image),
            namespace=env.get("MLOPS_K8S_NAMESPACE", cls.namespace),
            platform_secret=env.get("MLOPS_PLATFORM_SECRET", cls.platform_secret),
            platform_configmap=env.get("MLOPS_PLATFORM_CONFIGMAP", cls.platform_configmap),
            retry_delay_seconds=int(env.get("MLOPS_RETRY_DELAY_SECONDS", cls.retry_delay_seconds)),
            max_active_runs=_positive_int(env, "MLOPS_MAX_ACTIVE_RUNS", cls.max_active_runs),
            resources=step_resources(env.get(RESOURCES_ENV, "")),
            gpu_runtime_class=env.get("MLOPS_GPU_RUNTIME_CLASS", "").strip() or None,
            docker_labels=docker_labels(env.get(DOCKER_LABELS_ENV, "")),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name}={raw!r}: expected a whole number >= 1; fix the DAG deployment config")
    return int(raw)


def step_resources(value: str) -> dict[str, Resources]:
    """``MLOPS_STEP_RESOURCES`` (JSON, job name -> requests/limits) over the defaults; "" keeps them."""
    out = dict(DEFAULT_RESOURCES)
    if not value.strip():
        return out
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"{RESOURCES_ENV} is not valid JSON ({exc}): fix the DAG deployment config") from exc
    if not isinstance(parsed, dict) or set(parsed) - set(DEFAULT_RESOURCES):
        raise ValueError(
            f"{RESOURCES_ENV}: expected an object with some of {sorted(DEFAULT_RESOURCES)}, got {value!r}"
        )
    out.update({job: Resources.from_spec(job, spec) for job, spec in parsed.items()})
    return out


def docker_labels(value: str) -> dict[str, str]:
    """``MLOPS_DOCKER_LABELS``: a JSON object of string labels; "" is none."""
    if not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise ValueError(
            f"{DOCKER_LABELS_ENV} is not valid JSON ({exc}): fix the DAG deployment config"
        ) from exc
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise ValueError(
            f'{DOCKER_LABELS_ENV}: expected an object of strings like {{"owner": "mlops"}}, got {value!r}'
        )
    return parsed


# The platform values every step needs; in pods they come from the ConfigMap / Secret, locally
# from the worker's environment. Never part of a step's literal env.
PLATFORM_CONFIG = ("MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL_S3", "MLOPS_DATA_BUCKET", "AWS_DEFAULT_REGION")
PLATFORM_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

# Every step gets the whole run context and every parameter: the recipe's evaluate pod lacked
# EXPERIMENT_NAME and crashed; one complete env per step rules that class of bug out.
RUN_ENV = {
    "MLOPS_DAG_ID": "{{ dag.dag_id }}",
    "MLOPS_DAG_RUN_ID": "{{ run_id }}",
    "MLOPS_TASK_ID": "{{ ti.task_id }}",
    "MLOPS_TRY_NUMBER": "{{ ti.try_number }}",
    "MLOPS_EXPERIMENT_NAME": "{{ params.experiment_name }}",
    "MLOPS_MODEL_NAME": "{{ params.model_name }}",
    "MLOPS_DATASET": "{{ params.dataset }}",
    "MLOPS_LABEL_NOISE": "{{ params.label_noise }}",
    "MLOPS_SEED": "{{ params.seed }}",
    "MLOPS_TEST_SIZE": "{{ params.test_size }}",
    "MLOPS_N_ESTIMATORS": "{{ params.n_estimators }}",
    "MLOPS_MAX_DEPTH": "{{ params.max_depth }}",
    "MLOPS_MIN_ACCURACY": "{{ params.min_accuracy }}",
    "MLOPS_DATA_CONTENT_HASH": "{{ params.data_content_hash }}",
    "MLOPS_DATA_SOURCE": "{{ params.data_source }}",
}
# The exact run and version train registered (never "the latest run").
TRAIN_RESULT_ENV = {"MLOPS_TRAIN_RESULT": "{{ ti.xcom_pull(task_ids='train_model') | tojson }}"}



def pipeline_steps(deployment: Deployment) -> list[Step]:
    """preprocess_data >> train_model >> evaluate_and_register, in order."""
    res, image = deployment.resources, deployment.image
    # A pod cannot see its own image reference: hand it over, so training runs record it.
    env = RUN_ENV | {"MLOPS_JOB_IMAGE": image}
    return [
        Step("preprocess_data", "preprocess", env, res["preprocess"], image=image),
        Step("train_model", "train", env, res["train"], deployment.train_gpu, xcom=True, image=image),
        Step("evaluate_and_register", "evaluate", env | TRAIN_RESULT_ENV, res["evaluate"], image=image),
    ]
