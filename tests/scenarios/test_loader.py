"""Scenario loading: valid files load; every bad input names the file, the field path and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sandbox.scenarios import dags as dag_registry
from sandbox.scenarios.loader import ScenarioLoadError, load, load_all
from sandbox.scenarios.model import Scenario

HEAD = "apiVersion: mlops-sandbox/v1\nname: t\n"


def write(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    path = tmp_path / "scenarios" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    head = HEAD if text.startswith(HEAD) else ""
    path.write_text(head + textwrap.dedent(text[len(head) :]))
    return path


def test_registry_reads_dag_tasks_and_params(dags_dir: Path) -> None:
    reg = dag_registry.scan(dags_dir)
    info = reg["train_model_pipeline"]
    assert info.tasks == ["preprocess_data", "train_model", "evaluate_and_register"]
    assert info.params is not None
    assert info.params["n_estimators"].types == ["integer"]
    assert info.params["max_depth"].accepts(None) and info.params["max_depth"].accepts(3)
    assert not info.params["n_estimators"].accepts("many")
    assert not info.params["n_estimators"].accepts(True)


def test_valid_single_run_scenario_loads(tmp_path: Path, dags_dir: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """
        conf: {min_accuracy: 0.999, n_estimators: 20}
        expect:
          dag_run: failed
          tasks:
            preprocess_data: success
            train_model: {state: success, try_number: 1}
            evaluate_and_register: failed
          mlflow:
            metrics: {accuracy: ">= 0.85"}
            params: {n_estimators: "== 20"}
            registry: {versions: 1, aliases: {champion: null}, version_tags: {quality_gate: failed}}
          s3: {objects: [train.csv, test.csv], count: ">= 2"}
          log_contains: {evaluate_and_register: "below threshold"}
        """,
    )
    sc = load(path, dags_dir=dags_dir).scenario
    (run,) = sc.plan()
    assert run.conf == {"min_accuracy": 0.999, "n_estimators": 20}
    assert run.expect.mlflow is not None and run.expect.mlflow.metrics["accuracy"].matches(0.9)
    assert not run.expect.mlflow.metrics["accuracy"].matches(0.8)
    assert run.expect.task_expectations()["preprocess_data"].state == "success"


def test_multi_run_plan_merges_conf(tmp_path: Path, dags_dir: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """
        conf: {n_estimators: 10}
        runs:
          - name: first
            expect: {dag_run: success}
          - conf: {label_noise: 0.4}
            faults: [{task: train_model}]
            expect: {dag_run: failed}
        """,
    )
    runs = load(path, dags_dir=dags_dir).scenario.plan()
    assert [r.conf for r in runs] == [{"n_estimators": 10}, {"n_estimators": 10, "label_noise": 0.4}]
    assert runs[1].faults[0].tries == [1]


def test_repeated_runs_check_expect_after_last(tmp_path: Path, dags_dir: Path) -> None:
    path = write(tmp_path, HEAD + "runs: 2\nexpect: {dag_run: success}\n")
    runs = load(path, dags_dir=dags_dir).scenario.plan()
    assert [r.expect.dag_run for r in runs] == [None, "success"]


# Each kind of bad input (file, line, field path, message and fix) is a file of the corpus in
# tests/scenarios/corpus/bad, checked against the loader and the JSON schema by test_corpus.py.


def test_every_problem_is_reported_at_once(tmp_path: Path, dags_dir: Path) -> None:
    file = write(
        tmp_path,
        HEAD
        + """
        timeout: -1
        expect:
          tasks: {train_modl: success}
          mlflow:
            metrics: {accuracy: ">= abc", f1: "0.9..0.1"}
        """,
    )
    with pytest.raises(ScenarioLoadError) as info:
        load(file, dags_dir=dags_dir)
    paths = {i.path for i in info.value.issues}
    # Schema errors and comparisons are reported together (DAG checks need a valid schema first).
    assert {"timeout", "expect.mlflow.metrics.accuracy", "expect.mlflow.metrics.f1"} <= paths


def test_load_all_reports_problems_of_every_file(tmp_path: Path, dags_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr("sandbox.paths.DAGS_DIR", dags_dir)
    good = write(tmp_path, HEAD, "good.yaml")
    bad1 = write(tmp_path, HEAD + "bogus: 1\n", "bad1.yaml")
    bad2 = write(tmp_path, "name: x\n", "bad2.yaml")
    with pytest.raises(ScenarioLoadError) as info:
        load_all([good, bad1, bad2])
    files = {Path(i.file).name for i in info.value.issues}
    assert files == {"bad1.yaml", "bad2.yaml"}
    assert load_all([good])[0].scenario == Scenario.model_validate(
        {"apiVersion": "mlops-sandbox/v1", "name": "t"}
    )


def test_builtin_scenarios_are_valid_against_the_real_dag() -> None:
    from sandbox import paths
    from sandbox.scenarios.loader import discover

    files = discover(paths.SCENARIOS_DIR)
    assert len(files) >= 7
    loaded = load_all(files)
    assert any("gpu" in ls.scenario.requires for ls in loaded)
    reg = dag_registry.scan()
    assert reg["train_model_pipeline"].tasks is not None, "task ids of the real DAG must be statically known"


def test_unparsable_dag_file_defers_the_dag_id_check_to_the_run(tmp_path: Path, dags_dir: Path) -> None:
    # The broken file may define the DAG: the run then fails fast with Airflow's import error.
    broken = "from airflow.sdk import DAG\nwith DAG('broken_pipeline'):\n    x = (\n"
    (dags_dir / "broken.py").write_text(broken)
    path = write(tmp_path, HEAD + "dag: broken_pipeline\n")
    assert load(path, dags_dir=dags_dir).scenario.dag == "broken_pipeline"
    assert list(dag_registry.scan(dags_dir).broken) == [str(dags_dir / "broken.py")]
