"""The api-server's start-up against its passwords file exactly as our values give it to the official chart.

The official chart 1.22.0 cannot be pulled here, so what the api-server pod sees is derived from our values:
`apiServer.extraVolumes` (volumes), `apiServer.extraInitContainers` (run first, each with its mounts),
`volumeMounts` + `apiServer.extraVolumeMounts` (the main container's mounts; the chart appends both, see
chart/templates/api-server/api-server-deployment.yaml) and `config.core` (rendered into airflow.cfg). The
real Airflow 3.3.2 auth manager starts against that layout with Secret volumes read-only for real
(airflow_auth_probe.py: a private mount namespace, as root). Not modelled: the chart's own volumes (config,
logs) and the pod's UID (50000; root here, which a read-only mount stops all the same).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.charts.conftest import airflow_values

PROBE = Path(__file__).with_name("airflow_auth_probe.py")
USERS = {"admin": "generated-by-the-harness"}  # the Secret mlops-airflow-users as the harness writes it


def _namespace_prefix() -> list[str]:
    """How to get a private mount namespace here, or skip saying what is missing."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip(
            "needs util-linux `unshare` and `mount` (a private mount namespace for a read-only mount)"
        )
    prefix = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-m", "-r"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here ({' '.join(prefix)}: {probe.stderr.strip()})")
    return prefix


def _case(values: dict[str, Any]) -> dict[str, Any]:
    api = values.get("apiServer", {})
    return {
        "volumes": [*values.get("volumes", []), *api.get("extraVolumes", [])],
        "init_containers": api.get("extraInitContainers", []),
        "main_mounts": [*values.get("volumeMounts", []), *api.get("extraVolumeMounts", [])],
        "config": {"core": {k: v for k, v in values["config"]["core"].items() if k.startswith(("auth_",
                                                                                              "simple_auth"))}},
        "secrets": {"mlops-airflow-users": {"passwords.json": json.dumps(USERS)}},
    }  # fmt: skip


# The overlays may not touch the api-server's volumes or config (charts/overlay-keys.yaml): one overlay
# stands for both.
@pytest.mark.parametrize("value_set", ["production", "sandbox"])
def test_api_server_auth_manager_starts_with_the_users_from_the_secret(
    value_set: str, tmp_path: Path
) -> None:
    prefix = _namespace_prefix()
    case_file, result_file = tmp_path / "case.json", tmp_path / "result.json"
    case_file.write_text(json.dumps(_case(airflow_values(value_set))))
    out = subprocess.run([*prefix, sys.executable, str(PROBE), str(case_file), str(result_file)],
                         capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(result_file.read_text())
    for init in result["init"]:
        assert init["rc"] == 0, f"init container {init['name']} failed: {init['output']}"
    startup = result["startup"]
    assert startup["rc"] == 0, f"api-server auth manager start-up failed: {startup['error']}"
    # The users are the Secret's (a generated password would mean the file was not the Secret's copy).
    assert startup["passwords"] == USERS


def test_init_container_image_is_the_airflow_image() -> None:
    values = airflow_values("production")
    image = f"{values['defaultAirflowRepository']}:{values['defaultAirflowTag']}"
    assert {c["image"] for c in values["apiServer"]["extraInitContainers"]} == {image}
