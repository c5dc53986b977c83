"""``DockerJobOperator``: the ``docker`` runtime, the job image run on a Docker engine as its pod runs it.

What the pod gets, the container gets: the pod's environment (``jobenv.pod_env``: the platform ConfigMap,
the Secret keys the step references, the step's env; the image brings the rest), the image's own non-root
user (no override: it must be the pod's ``runAsUser``), a read-only root file system with only
``SCRATCH_DIR`` writable, no capabilities and no privilege escalation, the step's memory and CPU limits,
and an ``XCOM_DIR`` volume whose ``return.json`` is read back through the engine after the job exits, as
the KPO xcom sidecar reads it. The job's output streams into the task log; its exit code fails the task.

Why not the Docker provider's ``DockerOperator`` (apache-airflow-providers-docker 4.6.1): it builds the
container's host config inside a private method from a fixed argument list with no read-only root file
system; it loads a retrieved output file with ``pickle`` (a file the job wrote, unpickled on the worker)
and returns None when reading it fails; and a failed container raises one exception type without the exit
code, so an exit code cannot be mapped to a non-retryable failure. The Docker SDK it wraps (``docker``,
pinned in the platform lock) does all of this directly.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import tempfile
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops_pipeline.jobenv import LOCAL_PLATFORM_DIR_ENV, PlatformObjectError, pod_env, read_platform_objects
from mlops_pipeline.outcomes import job_failure
from mlops_pipeline.steps import SCRATCH_DIR, XCOM_DIR, Step

XCOM_FILE = f"{XCOM_DIR}/return.json"
# Kubernetes quantity suffixes (memory) -> bytes.
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}  # fmt: skip


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``512Mi``, ``1Gi``, ``1G``, ``1048576``) in bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kMGT]i?)?", quantity.strip())
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r} (e.g. 512Mi, 1Gi)")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def cpu_count(quantity: str) -> float:
    """A Kubernetes CPU quantity (``250m``, ``2``, ``0.5``) in CPUs."""
    text = quantity.strip()
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ValueError(f"not a CPU quantity: {quantity!r} (e.g. 250m, 2)") from None


def image_uid(configured_user: str) -> int | None:
    """The numeric UID of an image's ``USER`` (``10001:10001`` -> 10001); None when it is not numeric."""
    uid = (configured_user or "0").split(":", 1)[0]
    return int(uid) if uid.isdigit() else None


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Whole lines from a stream of output chunks (a chunk may end mid-line)."""
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode("utf-8", "replace")
        *complete, buffer = buffer.split("\n")
        yield from (line.rstrip() for line in complete)
    if buffer:
        yield buffer.rstrip()


class DockerJobOperator(BaseOperator):
    """Run one pipeline step's job in the job image on the Docker engine of ``DOCKER_HOST``."""

    template_fields: Sequence[str] = ("env",)
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        step: Step,
        platform_configmap: str,
        platform_secret: str,
        secret_keys: Sequence[str],
        job_uid: int,
        labels: Mapping[str, str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image = step.image
        self.args = step.args
        self.env = dict(step.env)
        self.limits = step.resources  # not `resources`: BaseOperator has its own (pool resources)
        self.gpu = step.gpu
        self.platform_configmap = platform_configmap
        self.platform_secret = platform_secret
        self.secret_keys = list(secret_keys)
        self.job_uid = job_uid  # not `run_as_user`: BaseOperator's is the worker's sudo impersonation
        self.labels = dict(labels)
        self._container: Any = None

    def container_env(self, worker: Mapping[str, str]) -> dict[str, str]:
        """The container's environment: exactly the pod's (``jobenv.pod_env``); the image adds the rest."""
        try:
            configmap, secret = read_platform_objects(
                worker.get(LOCAL_PLATFORM_DIR_ENV), self.platform_configmap, self.platform_secret
            )
            return pod_env(self.env, configmap=configmap, secret=secret, secret_keys=self.secret_keys)
        except PlatformObjectError as exc:
            raise AirflowException(str(exc)) from exc

    def container_config(
        self, env: Mapping[str, str], xcom_dir: str, *, engine_cpus: int, labels: Mapping[str, str]
    ) -> dict[str, Any]:
        """Keyword arguments of ``docker.DockerClient.containers.create``: the pod's constraints."""
        from docker.types import DeviceRequest, Mount

        cpus = cpu_count(self.limits.cpu_limit)
        return {
            "image": self.image,
            "command": ["python", *self.args],
            "name": f"mlops-{self.task_id.replace('_', '-')}-{uuid.uuid4().hex[:8]}",
            "environment": dict(env),
            # No `user`: the image's USER runs, as the pod's runAsUser does (checked before the start).
            "read_only": True,
            # The pod's emptyDir: writable, executable, no setuid, no devices.
            "tmpfs": {SCRATCH_DIR: "rw,exec,nosuid,nodev,mode=1777"},
            "mounts": [Mount(target=XCOM_DIR, source=xcom_dir, type="bind")],
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": memory_bytes(self.limits.memory_limit),
            # An engine refuses more CPUs than it has; a pod's limit is a ceiling, so the same ceiling holds.
            "nano_cpus": int(min(cpus, engine_cpus) * 1e9),
            "device_requests": [DeviceRequest(count=1, capabilities=[["gpu"]])] if self.gpu else None,
            # The platform's services listen on the host's loopback (the local stack).
            "network_mode": "host",
            "labels": {**self.labels, **labels},
            "detach": True,
        }

    def _check_user(self, image: Any) -> None:
        user = image.attrs.get("Config", {}).get("User") or ""
        if image_uid(user) != self.job_uid:
            raise AirflowFailException(
                f"the job image {self.image} runs as user {user or 'root'!r}, but its pod runs it as "
                f"{self.job_uid} (runAsUser): set `USER {self.job_uid}:{self.job_uid}` in "
                "jobs/Dockerfile"
            )

    def execute(self, context: Any) -> Any:
        import docker
        from docker.errors import DockerException, ImageNotFound

        env = self.container_env(os.environ)
        try:
            client = docker.from_env()
            image = client.images.get(self.image)
            engine_cpus = int(client.info().get("NCPU") or 1)
        except ImageNotFound as exc:
            raise AirflowException(
                f"the job image {self.image} is not on the Docker engine: build jobs/Dockerfile with that tag"
            ) from exc
        except DockerException as exc:
            raise AirflowException(f"cannot use the Docker engine (DOCKER_HOST): {exc}") from exc
        self._check_user(image)
        ti = context["ti"]
        labels = {"airflow.dag_id": ti.dag_id, "airflow.run_id": ti.run_id, "airflow.task_id": ti.task_id,
                  "airflow.try_number": str(ti.try_number)}  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="mlops-xcom-") as tmp:
            # The pod's xcom emptyDir: world-writable like one, inside a folder only this user can enter.
            xcom_dir = Path(tmp) / "xcom"
            xcom_dir.mkdir()
            xcom_dir.chmod(0o777)
            config = self.container_config(env, str(xcom_dir), engine_cpus=engine_cpus, labels=labels)
            self._container = container = client.containers.create(**config)
            try:
                return self._run(container)
            finally:
                self._container = None
                container.remove(force=True)

    def _run(self, container: Any) -> Any:
        self.log.info("running %s in %s (container %s)", " ".join(["python", *self.args]), self.image,
                      container.name)  # fmt: skip
        stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
        container.start()
        tail: deque[str] = deque(maxlen=5)
        for line in lines(stream):
            self.log.info("%s", line)
            if line.strip():
                tail.append(line)
        code = int(container.wait()["StatusCode"])
        if code != 0:
            container.reload()
            oom = container.attrs["State"].get("OOMKilled")
            why = f" (OOMKilled: the memory limit is {self.limits.memory_limit})" if oom else ""
            message = f"{' '.join(self.args)} exited with {code}{why}: {tail[-1] if tail else 'no output'}"
            raise job_failure(code, message)  # a failed gate is final: no retry (outcomes.py)
        return self._xcom(container) if self.do_xcom_push else None

    def _xcom(self, container: Any) -> Any:
        """The job's ``return.json``, read from the stopped container (None when it wrote none)."""
        from docker.errors import NotFound

        try:
            chunks, stat = container.get_archive(XCOM_FILE)
        except NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile(stat["name"])
            raw = member.read() if member else b""
        return json.loads(raw) if raw.strip() else None

    def on_kill(self) -> None:
        if self._container is not None:
            self._container.stop(timeout=10)
