"""Parse a DAG folder with Airflow's own DagBag and write what scenario validation needs, as JSON.

Run by ``sandbox/scenarios/dags.py`` in the platform env (this file imports only Airflow):
``python dag_dump.py <dags folder> <output json>``; the deployment config comes from the environment.
Output: ``{"dags": {dag_id: {"file", "tasks", "params": {name: {"default", "schema"}}}},
"import_errors": {file: traceback}}`` with files relative to the DAG folder. (Airflow logs to stdout,
so the result goes to a file.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


def dump(dags: Path) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(str(dags), bundle_path=dags)
    out: dict[str, Any] = {
        "dags": {},
        "import_errors": {_relative(f, dags): str(e) for f, e in bag.import_errors.items()},
    }
    for dag_id, dag in sorted(bag.dags.items()):
        defaults = dag.params.dump()
        out["dags"][dag_id] = {
            "file": _relative(dag.fileloc, dags),
            "tasks": [t.task_id for t in dag.topological_sort()],
            "params": {
                name: {"default": defaults.get(name), "schema": dag.params.get_param(name).schema}
                for name in dag.params
            },
        }
    return out


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(json.dumps(dump(Path(sys.argv[1])), default=str))
