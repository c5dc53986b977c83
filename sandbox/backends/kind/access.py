"""How the host reaches the platform on kind: NodePorts mapped onto 127.0.0.1 (no port-forward)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sandbox.platform.config import load_platform_config
from sandbox.stack import Endpoints


def endpoints(
    ports: Mapping[str, int], *, host: str = "127.0.0.1", credentials_file: Path | None = None,
    state_dir: Path | None = None,
) -> Endpoints:  # fmt: skip
    """Endpoints from the host ports (kind) or NodePorts on ``host`` (an existing cluster)."""
    config = load_platform_config("sandbox")
    return Endpoints(
        airflow_url=f"http://{host}:{ports['airflow']}",
        mlflow_url=f"http://{host}:{ports['mlflow']}",
        s3_url=f"http://{host}:{ports['s3']}",
        data_bucket=config.data_bucket,
        artifacts_destination=config.mlflow.artifacts.destination,
        credentials_file=credentials_file,
        state_dir=state_dir,
    )


def health_urls(ep: Endpoints) -> dict[str, str]:
    """Unauthenticated health URLs per service."""
    return {
        "airflow": f"{ep.airflow_url}/api/v2/monitor/health",
        "mlflow": f"{ep.mlflow_url}/health",
        "s3": f"{ep.s3_url}/healthz",
    }
