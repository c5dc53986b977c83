"""Run the production DAG once with ``dag.test()`` (local runtime) and report what Airflow recorded.

Usage: ``python dag_test_driver.py <dags folder> <output json> <run conf json> <fault json|null>``.
The environment carries the Airflow config (AIRFLOW_HOME, sqlite DB already migrated) and the
platform values. A fault, if given, is armed for this run's id before the run starts, as the
harness does.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path


def main(dags: Path, out: Path, conf: dict, fault: dict | None) -> None:
    import os

    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    dag = BundleDagBag(str(dags), bundle_path=dags).dags["train_model_pipeline"]
    logical_date = datetime.now(UTC).replace(microsecond=0)
    # dag.test() names the run like this; knowing it up front lets us arm a fault for it.
    run_id = DagRun.generate_run_id(
        run_type=DagRunType.MANUAL, logical_date=logical_date, run_after=logical_date
    )
    if fault:
        Path(os.environ["MLOPS_FAULTS_FILE"]).write_text(
            json.dumps({"faults": [{**fault, "dag_run_id": run_id}]})
        )
    dr = dag.test(logical_date=logical_date, run_after=logical_date, run_conf=conf)
    tis = {
        ti.task_id: {"state": str(ti.state), "try_number": ti.try_number} for ti in dr.get_task_instances()
    }
    summary = {"run_id": dr.run_id, "expected_run_id": run_id, "state": str(dr.state), "tasks": tis}
    out.write_text(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]))
