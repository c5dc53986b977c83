"""``LocalJobOperator``: the local runtime's stand-in for ``KubernetesPodOperator``.

It runs the step's job command (``python -m mlops_jobs <step>``) with the env a pod would get (the
platform ConfigMap and Secret from ``$MLOPS_LOCAL_PLATFORM_DIR``, the step's env; see ``jobenv``)
and hands the job's XCom file back as the task's return value, as the KPO xcom sidecar does. A job's
exit code means what it means on Kubernetes (``outcomes``: a failed quality gate is not retried).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from mlops_pipeline.jobenv import (
    LOCAL_PLATFORM_DIR_ENV,
    PlatformObjectError,
    local_job_env,
    read_platform_objects,
)
from mlops_pipeline.outcomes import job_failure


class LocalJobOperator(BaseOperator):
    """Run one pipeline job as a subprocess of the worker; its output goes to the task log.

    ``launcher``: an argv put in front of the job command, for a program that runs the command with a
    subprocess's contract (streams, env, working dir, exit code, signals). Empty here; a deployment sets
    it from outside (the sandbox's cluster policy: its warm job client).
    """

    template_fields: Sequence[str] = ("env",)
    ui_color = "#d9f0e3"
    launcher: Sequence[str] = ()

    def __init__(
        self,
        *,
        args: Sequence[str],
        env: Mapping[str, str],
        platform_configmap: str,
        platform_secret: str,
        secret_keys: Sequence[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.args = list(args)
        self.env = dict(env)
        self.platform_configmap = platform_configmap
        self.platform_secret = platform_secret
        self.secret_keys = list(secret_keys)
        self._proc: subprocess.Popen[str] | None = None

    def job_env(self, worker: Mapping[str, str], xcom_path: str) -> dict[str, str]:
        """The job's environment: what its pod would get (``jobenv``), given the worker's env."""
        try:
            configmap, secret = read_platform_objects(
                worker.get(LOCAL_PLATFORM_DIR_ENV), self.platform_configmap, self.platform_secret
            )
            return local_job_env(
                worker, self.env, xcom_path, configmap=configmap, secret=secret, secret_keys=self.secret_keys
            )
        except PlatformObjectError as exc:
            raise AirflowException(str(exc)) from exc

    def execute(self, context: Any) -> Any:
        command = [sys.executable, *self.args]
        with tempfile.TemporaryDirectory(prefix="mlops-xcom-") as tmp:
            xcom = Path(tmp) / "return.json"
            env = self.job_env(os.environ, str(xcom))
            self.log.info("running %s", " ".join(command))
            if self.launcher:
                self.log.info("launched by %s", " ".join(self.launcher))
            tail: deque[str] = deque(maxlen=5)
            self._proc = subprocess.Popen(
                [*self.launcher, *command],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                self.log.info("%s", line.rstrip())
                if line.strip():
                    tail.append(line.rstrip())
            code = self._proc.wait()
            if code != 0:
                last = tail[-1] if tail else "no output"
                raise job_failure(code, f"{' '.join(self.args)} exited with {code}: {last}")
            if not self.do_xcom_push or not xcom.exists():
                return None
            return json.loads(xcom.read_text())

    def on_kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
