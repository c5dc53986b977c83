"""``JobPodOperator``: the ``KubernetesPodOperator`` of a pipeline step, with the job's exit code read.

The provider fails a task whose pod failed with a plain ``AirflowException``, which Airflow retries.
For a final outcome (``outcomes.FINAL_EXIT_CODES``: a failed quality gate) this raises
``AirflowFailException`` instead, read from the base container's terminated state as the provider's
own ``skip_on_exit_code`` does in ``cleanup`` (cncf-kubernetes 10.25.0, operators/pod.py).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops_pipeline.outcomes import is_final, job_failure


def container_exit_code(pod: Any, container: str) -> int | None:
    """The exit code of ``container`` in a pod's status, None while it has not terminated."""
    statuses = (pod.status.container_statuses if pod is not None and pod.status else None) or []
    status = next((s for s in statuses if s.name == container), None)
    terminated = status.state.terminated if status is not None and status.state else None
    return None if terminated is None else terminated.exit_code


class JobPodOperator(KubernetesPodOperator):
    """Runs one pipeline job in a pod; a final exit code fails the task without a retry."""

    def cleanup(self, pod: Any, remote_pod: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().cleanup(pod, remote_pod, *args, **kwargs)
        except AirflowFailException:
            raise
        except AirflowException as exc:
            code = container_exit_code(remote_pod, self.base_container_name)
            if is_final(code):
                raise job_failure(code, str(exc)) from exc
            raise
