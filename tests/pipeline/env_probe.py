"""Parse the production DAG in a fresh interpreter and write, per task, what its job's environment is
made of, as JSON (Airflow logs to stdout, so the result goes to a file).

Usage: ``python env_probe.py <dags folder> <output json> [<worker env json>]``; the deployment config
(``MLOPS_TASK_RUNTIME`` ...) comes from this process's environment, as at DAG parse time.
- ``LocalJobOperator`` tasks: the keys of ``job_env(worker env)``, the real local runtime's answer.
- ``KubernetesPodOperator`` tasks: the pod from ``build_pod_request_obj()``: its container's env names,
  the Secret keys they reference and the ConfigMaps it takes whole (``envFrom``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(dags: Path, worker: dict[str, str]) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    sys.path.insert(0, str(dags))
    from mlops_pipeline import jobenv

    bag = BundleDagBag(str(dags), bundle_path=dags)
    assert not bag.import_errors, bag.import_errors
    out: dict[str, Any] = {
        "process_env": list(jobenv.PROCESS_ENV),
        "xcom_env": jobenv.XCOM_PATH_ENV,
        "tasks": {},
    }
    for task in bag.dags["train_model_pipeline"].tasks:
        if isinstance(task, KubernetesPodOperator):
            pod = task.build_pod_request_obj(dry_run=True)
            (base,) = [c for c in pod.spec.containers if c.name == "base"]
            out["tasks"][task.task_id] = {
                "env": sorted(e.name for e in base.env or []),
                "secret_refs": sorted(
                    [e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key]
                    for e in base.env or []
                    if e.value_from and e.value_from.secret_key_ref
                ),
                "configmaps": [s.config_map_ref.name for s in base.env_from or [] if s.config_map_ref],
                "other_env_from": [s.to_dict() for s in base.env_from or [] if not s.config_map_ref],
            }
        else:
            out["tasks"][task.task_id] = {"job_env": sorted(task.job_env(worker, "/tmp/xcom/return.json"))}
    return out


if __name__ == "__main__":
    worker = json.loads(Path(sys.argv[3]).read_text()) if len(sys.argv) > 3 else {}
    Path(sys.argv[2]).write_text(json.dumps(main(Path(sys.argv[1]), worker)))
