"""How the local stack's Airflow runs the pipeline's jobs: the DAG's task runtime, set by the backend.

- ``local``: each job a subprocess of the Airflow worker, in the platform env, with the repo's ``jobs/``
  (an edit takes effect on the next task).
- ``docker``: each job the production image (``jobs/Dockerfile``, tagged by its content hash and built by
  the ``job-image`` step) in a container on the Docker engine the ``docker`` CLI reaches, as its pod would
  run it (``dags/mlops_pipeline/containers.py``). The containers carry the sandbox's marker as a label, so
  ``down`` (and the next ``up`` after a killed harness) removes any a killed worker left running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import ConfigError
from sandbox.images import engine
from sandbox.images.tag import image_tag

RUNTIMES = ("local", "docker")
DEFAULT = "local"
CONTAINER_LABEL = "mlops-sandbox.id"  # value: the sandbox's marker (its state folder)


@dataclass(frozen=True)
class TaskRuntime:
    name: str = DEFAULT
    image: str = ""  # docker: the job image's content-hash tag
    docker: str = ""  # docker: the CLI
    docker_host: str = ""  # docker: the engine's endpoint, handed to the workers as DOCKER_HOST

    @classmethod
    def resolve(cls, name: str, jobs_folder: Path) -> TaskRuntime:
        """The runtime ``name``; for docker, a PreflightError now (before anything starts) when the engine
        is missing, not running or not ours to use."""
        if name not in RUNTIMES:
            raise ConfigError(
                f"Unknown task runtime {name!r}.",
                f"Use one of: {', '.join(RUNTIMES)} (--task-runtime, $MLOPS_SANDBOX_TASK_RUNTIME).",
            )
        if name == "local":
            return cls()
        found = engine.check("The docker task runtime runs the job image in containers")
        return cls(name, image_tag(jobs_folder), str(found.docker), found.host)

    def airflow_env(self, jobs_folder: Path, marker: str) -> dict[str, str]:
        """What the Airflow processes get for it (docs/architecture.md, "Set by the local backend")."""
        if self.name == "local":
            # The job code in place of the image's /opt/mlops, so job edits take effect without a rebuild.
            return {"MLOPS_TASK_RUNTIME": "local", "PYTHONPATH": str(jobs_folder)}
        return {
            "MLOPS_TASK_RUNTIME": "docker",
            "MLOPS_JOB_IMAGE": self.image,
            "MLOPS_DOCKER_LABELS": json.dumps({CONTAINER_LABEL: marker}),
            "DOCKER_HOST": self.docker_host,
        }


def remove_containers(docker_host: str, marker: str) -> int:
    """Force-remove the job containers labelled with ``marker`` on that engine; how many there were.

    Best effort: without a ``docker`` CLI or an engine that answers, no container of ours is running."""
    docker = shutil.which("docker")
    if docker is None:
        return 0
    env = {**os.environ, "DOCKER_HOST": docker_host}
    try:
        listed = subprocess.run(
            [docker, "ps", "-aq", "--filter", f"label={CONTAINER_LABEL}={marker}"],
            capture_output=True, text=True, timeout=30, check=False, env=env,
        )  # fmt: skip
        ids = listed.stdout.split() if listed.returncode == 0 else []
        if ids:
            subprocess.run([docker, "rm", "-f", *ids], capture_output=True, timeout=60, check=False, env=env)
    except (OSError, subprocess.SubprocessError):
        return 0
    return len(ids)
