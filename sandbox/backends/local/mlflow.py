"""The MLflow tracking server, started as ``charts/mlflow`` configures it (workers, artifact proxy and
destination, allowed hosts), with the Postgres store and the S3 server of this sandbox."""

from __future__ import annotations

import json
import urllib.request

from sandbox.backends.local import postgres, schemas
from sandbox.backends.local.process import ServiceSpec
from sandbox.backends.local.service import Probes, Service, StackContext
from sandbox.platform.config import service_url
from sandbox.ports import LOOPBACK

# Literals of charts/mlflow/templates/deployment.yaml (not values): repeated here, checked against the
# render by tests/charts/test_platform_config.py. The job runner forks extra workers (~1 GB) and the
# platform never uses it.
TEMPLATE_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def healthy(url: str) -> bool:
    """``/health`` answers even when the API would refuse the Host header, so probe the API too."""
    with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
        if resp.status != 200:
            return False
    probe = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    with urllib.request.urlopen(probe, timeout=3) as resp:
        return resp.status == 200 and isinstance(json.loads(resp.read() or b"{}"), dict)


def server_args(ctx: StackContext) -> list[str]:
    """The chart's ``mlflow server`` arguments, on this sandbox's loopback port."""
    return ctx.config.mlflow.server_args(host=LOOPBACK, port=ctx.ports["mlflow"])


def server_env(ctx: StackContext) -> dict[str, str]:
    """The chart's container environment, with this sandbox's addresses and secrets."""
    m = ctx.config.mlflow
    return {
        **ctx.process_env(),
        # In the environment, not argv (as in the chart): a command line is visible to every user via
        # ps, and ends up in state.json.
        "MLFLOW_BACKEND_STORE_URI": postgres.database_url(ctx, m.backend_store.database),
        "AWS_ACCESS_KEY_ID": ctx.secrets["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": ctx.secrets["AWS_SECRET_ACCESS_KEY"],
        "MLFLOW_S3_ENDPOINT_URL": service_url(m.artifacts.s3_endpoint_url, ctx.address("s3")),
        "AWS_DEFAULT_REGION": ctx.config.platform.region,
        **TEMPLATE_ENV,
    }


class Mlflow(Service):
    name = "mlflow"
    after = ("postgres", "s3")
    stop_stage = 2
    port_key = "mlflow"

    def spec(self, ctx: StackContext) -> ServiceSpec:
        url = ctx.url("mlflow")
        return ServiceSpec(
            name=self.name,
            argv=[str(ctx.python), "-m", "mlflow", "server", *server_args(ctx)],
            env=server_env(ctx),
            log=ctx.state.log_file(self.name),
            ready=lambda: healthy(url),
            timeout=self.timeout(ctx),
            port=ctx.ports["mlflow"],
            url=url,
            secrets=[ctx.secrets["POSTGRES_PASSWORD"], ctx.secrets["AWS_SECRET_ACCESS_KEY"]],
        )

    def provision(self, ctx: StackContext) -> str:
        schemas.save_if_pristine(ctx, ctx.config.mlflow.backend_store.database)
        return ctx.url("mlflow")

    def health(self, ctx: StackContext, probes: Probes) -> tuple[bool, str]:
        return healthy(ctx.url("mlflow")), ""
