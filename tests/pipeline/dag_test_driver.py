"""Run the production DAG once with ``dag.test()`` (local runtime) and report what Airflow recorded.

Usage: ``python dag_test_driver.py <dags folder> <output json> <run conf json> <faults json|null>``.
The environment carries the Airflow config (AIRFLOW_HOME with the sandbox's cluster policy in
``config/``, sqlite DB already migrated) and the deployment config. Faults, if given, are armed for this
run's id before the run starts, as the harness does: an Airflow Variable the policy reads.
"""

from __future__ import annotations

import importlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path


def main(dags: Path, out: Path, conf: dict, faults: list | None) -> None:
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.variable import Variable
    from airflow.utils.types import DagRunType

    # The sandbox's cluster policy: importable once Airflow has put $AIRFLOW_HOME/config on sys.path.
    airflow_local_settings = importlib.import_module("airflow_local_settings")

    dag = BundleDagBag(str(dags), bundle_path=dags).dags["train_model_pipeline"]
    logical_date = datetime.now(UTC).replace(microsecond=0)
    # dag.test() names the run like this; knowing it up front lets us arm faults for it.
    run_id = DagRun.generate_run_id(
        run_type=DagRunType.MANUAL, logical_date=logical_date, run_after=logical_date
    )
    if faults:
        Variable.set(airflow_local_settings.fault_variable(run_id), json.dumps(faults))
    dr = dag.test(logical_date=logical_date, run_after=logical_date, run_conf=conf)
    tis = {
        ti.task_id: {"state": str(ti.state), "try_number": ti.try_number} for ti in dr.get_task_instances()
    }
    summary = {"run_id": dr.run_id, "expected_run_id": run_id, "state": str(dr.state), "tasks": tis}
    out.write_text(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]))
