"""The platform's configuration as the charts deploy it: one typed, validated model read from
``charts/*/values.yaml`` plus an overlay (``local`` for the local backend), without helm.

Only a few value keys are read (listed per model below); everything else in the values files is
ignored here, so production may add keys freely. ``tests/charts/test_platform_config.py`` renders the
charts with the real helm and checks that what this module derives (ConfigMap, MLflow flags,
buckets) is what helm renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sandbox.errors import ConfigError
from sandbox.paths import CHARTS_DIR
from sandbox.platform import values as values_mod

NAMESPACE = "mlops"  # the namespace every release is installed in (docs/charts.md)
CHARTS = ("postgres", "s3", "mlflow", "platform", "airflow")


class _Values(BaseModel):
    # Tolerant: production values carry many keys this harness does not read.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


def _s3_uri(value: str) -> str:
    if not value.startswith("s3://") or not value.removeprefix("s3://").split("/", 1)[0]:
        raise ValueError(f"must be an s3://bucket[/prefix] URI, got {value!r}")
    return value.rstrip("/")


# --- charts/platform ----------------------------------------------------------------------------
class MlflowClientValues(_Values):
    """The jobs' MLflow client retry budget (``MLFLOW_HTTP_REQUEST_*`` in the ConfigMap)."""

    max_retries: int = Field(alias="maxRetries", ge=0, le=10)  # MLflow caps it at 10
    backoff_factor: int = Field(alias="backoffFactor", ge=0, le=120)  # an int for MLflow
    request_timeout_seconds: int = Field(alias="requestTimeoutSeconds", ge=1)


class PlatformValues(_Values):
    """Reads ``configMapName``, ``mlflowTrackingUri``, ``s3EndpointUrl``, ``dataBucket``, ``region``,
    ``credentialsSecretName``, ``mlflowClient.{maxRetries,backoffFactor,requestTimeoutSeconds}``."""

    config_map_name: str = Field(alias="configMapName", min_length=1)
    mlflow_tracking_uri: str = Field(alias="mlflowTrackingUri", min_length=1)
    s3_endpoint_url: str = Field(alias="s3EndpointUrl", min_length=1)
    data_bucket: str = Field(alias="dataBucket", min_length=1)
    region: str = Field(min_length=1)
    credentials_secret_name: str = Field(alias="credentialsSecretName", min_length=1)
    mlflow_client: MlflowClientValues = Field(alias="mlflowClient")


# --- charts/s3 ----------------------------------------------------------------------------------
class S3Auth(_Values):
    existing_secret: str = Field(alias="existingSecret", min_length=1)
    access_key_key: str = Field(alias="accessKeyKey", min_length=1)
    secret_key_key: str = Field(alias="secretKeyKey", min_length=1)


class S3Values(_Values):
    """Reads ``buckets`` and ``auth.{existingSecret,accessKeyKey,secretKeyKey}`` (the S3 identity)."""

    buckets: list[str] = Field(min_length=1)
    auth: S3Auth


# --- charts/mlflow ------------------------------------------------------------------------------
class MlflowArtifacts(_Values):
    destination: str
    serve_artifacts: bool = Field(True, alias="serveArtifacts")
    s3_endpoint_url: str = Field(alias="s3EndpointUrl", min_length=1)
    existing_secret: str = Field(alias="existingSecret", min_length=1)
    access_key_key: str = Field(alias="accessKeyKey", min_length=1)
    secret_key_key: str = Field(alias="secretKeyKey", min_length=1)

    @field_validator("destination")
    @classmethod
    def _s3_destination(cls, value: str) -> str:
        return _s3_uri(value)


class MlflowBackendStore(_Values):
    database: str = Field(min_length=1)


class MlflowValues(_Values):
    """Reads ``workers``, ``artifacts.*``, ``extraAllowedHosts``, ``backendStore.database``."""

    workers: int = Field(ge=1)
    artifacts: MlflowArtifacts
    extra_allowed_hosts: list[str] = Field(default_factory=list, alias="extraAllowedHosts")
    backend_store: MlflowBackendStore = Field(alias="backendStore")

    def allowed_hosts(self, release: str = "mlflow", namespace: str = NAMESPACE) -> list[str]:
        """``--allowed-hosts`` as the chart's ``mlflow.allowedHosts`` helper builds it."""
        name = release[:63].rstrip("-")
        hosts = [
            name,
            f"{name}.{namespace}",
            f"{name}.{namespace}.svc",
            f"{name}.{namespace}.svc.cluster.local",
        ]
        return [h for host in hosts for h in (host, f"{host}:*")] + list(self.extra_allowed_hosts)

    def server_args(
        self, host: str, port: int, release: str = "mlflow", namespace: str = NAMESPACE
    ) -> list[str]:
        """The ``mlflow server`` arguments the chart's Deployment passes (``--flag=value`` form)."""
        artifacts = (
            [f"--artifacts-destination={self.artifacts.destination}"]  # serving is MLflow's default
            if self.artifacts.serve_artifacts
            else ["--no-serve-artifacts", f"--default-artifact-root={self.artifacts.destination}"]
        )
        return [
            f"--host={host}",
            f"--port={port}",
            f"--workers={self.workers}",
            *artifacts,
            f"--allowed-hosts={','.join(self.allowed_hosts(release, namespace))}",
        ]


# --- charts/postgres ----------------------------------------------------------------------------
class PostgresValues(_Values):
    """Reads ``databases``."""

    databases: list[str] = Field(min_length=1)


# --- charts/airflow (official chart) ------------------------------------------------------------
class EnvVar(_Values):
    name: str = Field(min_length=1)
    value: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # `value: 2` in YAML is a number; Kubernetes would reject it, the chart quotes it: a string.
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class AirflowComponent(_Values):
    """One component's own values: ``env`` (added to the chart's global ``env``)."""

    env: list[EnvVar] = Field(default_factory=list)


# The local backend's component names -> the official chart's values key of that component.
COMPONENT_VALUES_KEYS = {
    "api-server": "apiServer", "scheduler": "scheduler", "dag-processor": "dagProcessor",
    "triggerer": "triggerer",
}  # fmt: skip


class AirflowValues(_Values):
    """Reads ``executor``, ``config`` (section -> key -> value), the global ``env`` and each
    component's ``env`` (``apiServer``, ``scheduler``, ``dagProcessor``, ``triggerer``): the DAG's
    deployment config lives on the components that parse the DAG."""

    executor: str = Field(min_length=1)
    config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    env: list[EnvVar] = Field(default_factory=list)
    api_server: AirflowComponent = Field(default_factory=AirflowComponent, alias="apiServer")
    scheduler: AirflowComponent = Field(default_factory=AirflowComponent)
    dag_processor: AirflowComponent = Field(default_factory=AirflowComponent, alias="dagProcessor")
    triggerer: AirflowComponent = Field(default_factory=AirflowComponent)

    def config_env(self) -> dict[str, str]:
        """``config:`` as Airflow reads it from the environment: ``AIRFLOW__SECTION__KEY``, plus the
        executor (the chart writes ``executor`` into ``[core] executor``)."""
        out = {"AIRFLOW__CORE__EXECUTOR": self.executor}
        for section, settings in self.config.items():
            for key, value in (settings or {}).items():
                out[f"AIRFLOW__{section.upper()}__{key.upper()}"] = _config_text(value)
        return out

    def component_env(self, component: str) -> dict[str, str]:
        """A component's custom environment as the chart gives it: the global ``env`` then the
        component's own (entries with a literal value; ``valueFrom`` entries need a cluster)."""
        own: AirflowComponent = getattr(self, _attr(COMPONENT_VALUES_KEYS[component]))
        return {e.name: e.value for e in (*self.env, *own.env) if e.value is not None}

    def deployment_env(self) -> dict[str, str]:
        """The DAG's deployment config: the environment of the scheduler, where the LocalExecutor
        runs every task (the dag-processor parses the DAG with the same list; a test checks it)."""
        return self.component_env("scheduler")

    def users(self) -> list[str]:
        """User names of the simple auth manager (``[core] simple_auth_manager_users``, ``name:role``)."""
        raw = str(self.config.get("core", {}).get("simple_auth_manager_users", ""))
        return [u.split(":", 1)[0].strip() for u in raw.split(",") if u.strip()]


def _attr(values_key: str) -> str:
    """``dagProcessor`` -> ``dag_processor`` (the model's field name for a values key)."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in values_key)


def _config_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


# --- the whole platform -------------------------------------------------------------------------
class PodPlatform(BaseModel):
    """What every pipeline pod gets from the platform: the ConfigMap (``envFrom``) and the Secret
    (``secretKeyRef``s), by name and content."""

    model_config = ConfigDict(frozen=True)

    configmap_name: str
    configmap: dict[str, str]
    secret_name: str
    secret_keys: tuple[str, ...]


class PlatformConfig(BaseModel):
    """The configuration of one value set (production, or production + an overlay)."""

    model_config = ConfigDict(frozen=True)

    overlay: str | None
    charts_dir: Path
    # `<name>-<version>` of charts/platform/Chart.yaml: the ConfigMap's MLOPS_CHART_VERSION.
    platform_chart: str
    platform: PlatformValues
    s3: S3Values
    mlflow: MlflowValues
    postgres: PostgresValues
    airflow: AirflowValues

    @property
    def artifacts_bucket(self) -> str:
        return self.mlflow.artifacts.destination.removeprefix("s3://").split("/", 1)[0]

    @property
    def data_bucket(self) -> str:
        return self.platform.data_bucket

    @property
    def buckets(self) -> list[str]:
        """The buckets the S3 chart creates."""
        return list(self.s3.buckets)

    def pod_platform(self) -> PodPlatform:
        """The platform ConfigMap (as ``charts/platform/templates/configmap.yaml`` renders it) and the
        keys of the credentials Secret (the S3 identity's keys)."""
        p = self.platform
        return PodPlatform(
            configmap_name=p.config_map_name,
            configmap={
                "MLFLOW_TRACKING_URI": p.mlflow_tracking_uri,
                "AWS_ENDPOINT_URL_S3": p.s3_endpoint_url,
                "MLOPS_DATA_BUCKET": p.data_bucket,
                "AWS_DEFAULT_REGION": p.region,
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(p.mlflow_client.max_retries),
                "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(p.mlflow_client.backoff_factor),
                "MLFLOW_HTTP_REQUEST_TIMEOUT": str(p.mlflow_client.request_timeout_seconds),
                "MLOPS_CHART_VERSION": self.platform_chart,
            },
            secret_name=p.credentials_secret_name,
            secret_keys=(self.s3.auth.access_key_key, self.s3.auth.secret_key_key),
        )


def _key(loc: tuple[Any, ...]) -> str:
    """A pydantic error location (aliases, as written in the YAML) as a dotted values key."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_platform_config(
    overlay: str | None = "local", charts_dir: Path | str = CHARTS_DIR
) -> PlatformConfig:
    """Read and validate every chart's values (plus ``values-<overlay>.yaml``); ConfigError names the
    file, the key and the fix."""
    charts_dir = Path(charts_dir)
    models: Mapping[str, type[_Values]] = {
        "platform": PlatformValues, "s3": S3Values, "mlflow": MlflowValues, "postgres": PostgresValues,
        "airflow": AirflowValues,
    }  # fmt: skip
    parsed: dict[str, Any] = {}
    allow_list = values_mod.overlay_keys(charts_dir) if overlay else {}
    for chart, model in models.items():
        chart_values = values_mod.load(chart, overlay, charts_dir, allow_list)
        try:
            parsed[chart] = model.model_validate(chart_values.values)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = _key(tuple(err["loc"]))
            raise ConfigError(
                f"{chart_values.source(key)}: {err['msg'].lower()} (got {err.get('input')!r}).",
                f"Fix `{key}` in the chart's values (the sandbox reads it to start the platform; "
                "docs/architecture.md lists the keys it reads).",
            ) from exc
    config = PlatformConfig(
        overlay=overlay, charts_dir=charts_dir, platform_chart=_chart_id(charts_dir / "platform"), **parsed
    )
    _check_consistency(config)
    return config


def _chart_id(chart: Path) -> str:
    """``<name>-<version>`` from a chart's ``Chart.yaml`` (what ``printf "%s-%s" .Chart.Name
    .Chart.Version`` renders)."""
    meta = values_mod.read_yaml(chart / "Chart.yaml")
    if not isinstance(meta, dict) or not meta.get("name") or not meta.get("version"):
        raise ConfigError(
            f"{chart / 'Chart.yaml'} lacks `name` or `version`.", "Restore the chart's Chart.yaml from git."
        )
    return f"{meta['name']}-{meta['version']}"


def _check_consistency(config: PlatformConfig) -> None:
    """Facts that several charts state must agree (one bucket list, one credentials Secret)."""
    d = config.charts_dir
    s3_file, mlflow_file = d / "s3" / "values.yaml", d / "mlflow" / "values.yaml"
    platform_file, postgres_file = d / "platform" / "values.yaml", d / "postgres" / "values.yaml"
    for bucket, where in (
        (config.artifacts_bucket, f"{mlflow_file} `artifacts.destination`"),
        (config.data_bucket, f"{platform_file} `dataBucket`"),
    ):
        if bucket not in config.s3.buckets:
            raise ConfigError(
                f"{where} names bucket {bucket!r}, which {s3_file} `buckets` does not create "
                f"({', '.join(config.s3.buckets)}).",
                f"Add {bucket!r} to the S3 chart's `buckets`, or use one of those.",
            )
    secret = config.platform.credentials_secret_name
    if config.s3.auth.existing_secret != secret:
        raise ConfigError(
            f"{s3_file} `auth.existingSecret` ({config.s3.auth.existing_secret!r}) is not the "
            f"pods' credentials Secret {platform_file} `credentialsSecretName` ({secret!r}).",
            "The pipeline pods and the S3 server must share one identity: name the same Secret in both.",
        )
    if config.mlflow.backend_store.database not in config.postgres.databases:
        raise ConfigError(
            f"{mlflow_file} `backendStore.database` ({config.mlflow.backend_store.database!r}) "
            f"is not created by {postgres_file} `databases` ({', '.join(config.postgres.databases)}).",
            "Add it to the Postgres chart's `databases`.",
        )


def service_url(url: str, local_address: str) -> str:
    """``url`` (an in-cluster service URL from values) pointed at ``local_address`` (``host:port``),
    keeping its scheme and path."""
    parts = urlsplit(url)
    return parts._replace(netloc=local_address).geturl()
