"""Parse the production DAG in a fresh interpreter and print what the tests check, as JSON.

Run by ``test_dag.py`` once per deployment config: the DAG reads its deployment config at parse
time, so each config gets its own process (no cached modules, no shared Airflow settings).
Usage: ``python dag_probe.py <dags folder> <output json> [<run confs json>]``; deployment config
comes from the environment. (Airflow logs to stdout, so the result goes to a file.)
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any


def _param_errors(dag: Any, confs: list[dict[str, Any]]) -> list[str | None]:
    """For each run conf: None when Airflow accepts it, else the validation error."""
    errors: list[str | None] = []
    for conf in confs:
        params = copy.deepcopy(dag.params)
        try:
            params.update(conf)  # __setitem__ validates each value against its Param's schema
            params.validate()
        except Exception as exc:  # ParamValidationError; its module moved between Airflow 3 releases
            errors.append(f"{type(exc).__name__}: {exc}")
        else:
            errors.append(None)
    return errors


def main(dags: Path, confs: list[dict[str, Any]]) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import ApiClient

    bag = BundleDagBag(str(dags), bundle_path=dags)
    out: dict[str, Any] = {
        "import_errors": bag.import_errors,
        "dag_ids": sorted(bag.dags),
        "files": sorted(stat.file for stat in bag.dagbag_stats),
    }
    dag = bag.dags.get("train_model_pipeline")
    if dag is None:
        return out
    api = ApiClient()
    out.update(
        schedule=dag.schedule,
        timetable=type(dag.timetable).__name__,
        catchup=dag.catchup,
        max_active_runs=dag.max_active_runs,
        params=dict(dag.params.dump()),
        param_schema={k: dag.params.get_param(k).schema for k in dag.params},
        param_errors=_param_errors(dag, confs),
        order=[t.task_id for t in dag.topological_sort()],
        tasks={},
    )
    for task in dag.tasks:
        info: dict[str, Any] = {
            "type": type(task).__name__,
            "downstream": sorted(task.downstream_task_ids),
            "retries": task.retries,
            "retry_delay": task.retry_delay.total_seconds(),
            "do_xcom_push": task.do_xcom_push,
        }
        if isinstance(task, KubernetesPodOperator):
            pod = task.build_pod_request_obj(dry_run=True)  # no cluster, no kube config
            info["pod"] = api.sanitize_for_serialization(pod)
            info["on_finish_action"] = task.on_finish_action.value
            info["get_logs"] = task.get_logs
        else:
            info["args"] = task.args
            info["env"] = task.env
        out["tasks"][task.task_id] = info
    return out


if __name__ == "__main__":
    confs = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
    Path(sys.argv[2]).write_text(json.dumps(main(Path(sys.argv[1]), confs), default=str))
