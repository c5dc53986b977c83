"""Exit codes of ``python -m mlops_jobs <step>``: part of the job contract (docs/architecture.md).

A deployment reads them to decide what a failed task means. ``GATE_FAILED`` is a deterministic
outcome (the same run gated again fails again), so the DAG fails the task without a retry (its
runtimes map it in ``dags/mlops_pipeline/outcomes.py``, which repeats the number: the DAG runs in
the Airflow image, without this package); every other non-zero code may be transient and is retried.
"""

OK = 0
FAILED = 1  # the step failed (a missing input, an unreachable service): a retry may pass
CONFIG_ERROR = 2  # usage or configuration error (the job contract is not met)
GATE_FAILED = 3  # the quality gate rejected the model: final, not retried
