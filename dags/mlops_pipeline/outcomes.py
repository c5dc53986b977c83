"""What a job's exit code means for its task, in one place for every task runtime.

The job contract's exit codes are defined in the job image (``jobs/mlops_jobs/exitcodes.py``); the DAG
runs in the Airflow image without that package, so the one code it acts on is repeated here (a test
keeps the two equal). A failed quality gate is deterministic: the task fails at once
(``AirflowFailException``: no retry, which on Kubernetes also saves a pod and its minutes). Any other
non-zero exit may be transient (a lost node, an unreachable service) and keeps the task's retries.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException

GATE_FAILED_EXIT_CODE = 3  # = mlops_jobs.exitcodes.GATE_FAILED
FINAL_EXIT_CODES = {GATE_FAILED_EXIT_CODE: "the quality gate rejected the model; not retried"}


def is_final(exit_code: int | None) -> bool:
    """Whether a job that exited with ``exit_code`` must not be retried."""
    return exit_code in FINAL_EXIT_CODES


def job_failure(exit_code: int | None, message: str) -> AirflowException:
    """The exception a task raises for a job that exited with ``exit_code`` (non-zero)."""
    if is_final(exit_code):
        return AirflowFailException(f"{message} ({FINAL_EXIT_CODES[exit_code]})")  # type: ignore[index]
    return AirflowException(message)
