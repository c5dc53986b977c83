"""The environment a local job gets: what a pod would get, and none of the worker's Airflow secrets.

Pure (no Airflow import), like ``faults``, so it is testable on its own.
"""

from __future__ import annotations

from collections.abc import Mapping

# Airflow's own config (DB URL with its password, fernet key, JWT secret), connections and
# variables: a pod never sees them, so a local job must not either.
WORKER_ONLY_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "_AIRFLOW")


def local_job_env(worker: Mapping[str, str], step: Mapping[str, object], xcom_path: str) -> dict[str, str]:
    """Worker env (platform values, PATH, PYTHONPATH) minus Airflow's, plus the step's rendered env."""
    env = {k: v for k, v in worker.items() if not k.startswith(WORKER_ONLY_PREFIXES)}
    env.update({k: str(v) for k, v in step.items()})
    env["MLOPS_XCOM_PATH"] = xcom_path
    return env
