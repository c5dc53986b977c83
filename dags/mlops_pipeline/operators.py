"""``LocalJobOperator``: the local runtime's stand-in for ``KubernetesPodOperator``.

It runs the step's job command (``python -m mlops_jobs <step>``) with the same env a pod would get,
the platform values coming from the worker's own environment, and hands the job's XCom file back
as the task's return value, as the KPO xcom sidecar does.
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

from mlops_pipeline.faults import FAULTS_FILE_ENV, armed_fault
from mlops_pipeline.jobenv import local_job_env


class LocalJobOperator(BaseOperator):
    """Run one pipeline job as a subprocess of the worker; its output goes to the task log."""

    template_fields: Sequence[str] = ("env",)
    ui_color = "#d9f0e3"

    def __init__(self, *, args: Sequence[str], env: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.args = list(args)
        self.env = dict(env)
        self._proc: subprocess.Popen[str] | None = None

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        message = armed_fault(os.environ.get(FAULTS_FILE_ENV), context["run_id"], ti.task_id, ti.try_number)
        if message is not None:
            raise AirflowException(f"injected fault: {message}")
        command = [sys.executable, *self.args]
        with tempfile.TemporaryDirectory(prefix="mlops-xcom-") as tmp:
            xcom = Path(tmp) / "return.json"
            env = local_job_env(os.environ, self.env, str(xcom))
            self.log.info("running %s", " ".join(command))
            tail: deque[str] = deque(maxlen=5)
            self._proc = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
            )
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                self.log.info("%s", line.rstrip())
                if line.strip():
                    tail.append(line.rstrip())
            code = self._proc.wait()
            if code != 0:
                last = tail[-1] if tail else "no output"
                raise AirflowException(f"{' '.join(self.args)} exited with {code}: {last}")
            if not self.do_xcom_push or not xcom.exists():
                return None
            return json.loads(xcom.read_text())

    def on_kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
