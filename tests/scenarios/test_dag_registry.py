"""The DAG registry is Airflow's own parse: any valid DAG works, whatever its code looks like."""

from __future__ import annotations

from pathlib import Path

from sandbox import paths
from sandbox.scenarios import dags as dag_registry

# Nothing here is a literal a syntax-tree reader could follow: ids, tasks and params are computed,
# and the DAG comes from the TaskFlow decorator.
DYNAMIC_DAG = """
from airflow.sdk import Param, dag, task

PREFIX = "_".join(["nightly", "scoring"])
REGIONS = [f"region_{i}" for i in range(3)]


def params():
    return {name: Param(default, type=kind, minimum=0) for name, default, kind in
            (("batch_size", 32, "integer"), ("threshold", 0.5, "number"))}


@dag(dag_id=f"{PREFIX}_pipeline", schedule=None, params=params())
def scoring():
    previous = None
    for region in REGIONS:
        @task(task_id=f"score_{region}")
        def score():
            return 1
        current = score()
        if previous is not None:
            previous >> current
        previous = current


scoring()
"""


def test_computed_dag_ids_tasks_and_params_are_known(tmp_path: Path) -> None:
    (tmp_path / "scoring.py").write_text(DYNAMIC_DAG)
    registry = dag_registry.scan(tmp_path)
    info = registry["nightly_scoring_pipeline"]
    assert info.tasks == ["score_region_0", "score_region_1", "score_region_2"]
    assert info.params is not None and set(info.params) == {"batch_size", "threshold"}
    assert info.params["batch_size"].default == 32
    assert info.params["batch_size"].accepts(64) and not info.params["batch_size"].accepts(-1)
    assert not info.params["threshold"].accepts("high")
    assert info.file == tmp_path.resolve() / "scoring.py"


def test_the_production_dag_as_airflow_sees_it() -> None:
    info = dag_registry.scan()["train_model_pipeline"]
    assert info.tasks == ["preprocess_data", "train_model", "evaluate_and_register"]
    assert info.params is not None and info.params["min_accuracy"].schema["maximum"] == 1


def test_an_import_error_is_recorded_with_airflows_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("from airflow.sdk import DAG\nimport no_such_module_here\n")
    registry = dag_registry.scan(tmp_path)
    assert list(registry) == []
    (trace,) = registry.broken.values()
    assert "No module named 'no_such_module_here'" in trace


def test_the_parse_is_cached_by_content(tmp_path: Path) -> None:
    (tmp_path / "scoring.py").write_text(DYNAMIC_DAG)
    dag_registry.scan(tmp_path)
    cached = sorted((paths.cache_root() / "dag-registry").glob("*.json"))
    dag_registry.scan(tmp_path)
    assert sorted((paths.cache_root() / "dag-registry").glob("*.json")) == cached
    (tmp_path / "scoring.py").write_text(DYNAMIC_DAG.replace('"scoring"', '"ranking"'))
    assert "nightly_ranking_pipeline" in dag_registry.scan(tmp_path)
