"""Scenario loading: valid files load; every bad input names the file, the field path and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sandbox.errors import ConfigError
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


# (yaml body, field path, message fragment, fix fragment, line)
BAD = {
    "malformed yaml": (
        "apiVersion: mlops-sandbox/v1\nname: t\nexpect:\n  dag_run: success\n tasks: {}\n",
        "",
        "invalid YAML",
        "check indentation",
        5,
    ),
    "empty file": ("", "", "file is empty", "apiVersion: mlops-sandbox/v1", 1),
    "top level is a list": ("- a\n- b\n", "", "not a mapping", "key: value", 1),
    "missing apiVersion": ("name: t\n", "apiVersion", "required field is missing", "add 'apiVersion:'", 1),
    "wrong apiVersion": (
        "apiVersion: v0\nname: t\n",
        "apiVersion",
        "unsupported version 'v0'",
        "apiVersion: mlops-sandbox/v1",
        1,
    ),
    "unknown top-level key": (
        HEAD + "expects: {}\n",
        "expects",
        "unknown field",
        "did you mean 'expect'?",
        3,
    ),
    "unknown nested key": (
        HEAD + "expect:\n  mlflow:\n    metric: {accuracy: 0.9}\n",
        "expect.mlflow.metric",
        "unknown field",
        "did you mean 'metrics'?",
        5,
    ),
    "wrong type timeout": (HEAD + "timeout: soon\n", "timeout", "valid number", "give a number", 3),
    "wrong type runs": (HEAD + "runs: three\n", "runs", "valid integer", "give a whole number", 3),
    "non-numeric ordered comparison": (
        HEAD + "expect:\n  mlflow:\n    metrics: {accuracy: '>= abc'}\n",
        "expect.mlflow.metrics.accuracy",
        ">= needs a number",
        "'>= 0.9'",
        5,
    ),
    "empty range": (
        HEAD + "expect:\n  mlflow:\n    metrics:\n      accuracy: '0.95..0.8'\n",
        "expect.mlflow.metrics.accuracy",
        "is empty",
        "'0.8..0.95'",
        6,
    ),
    "unknown operator": (
        HEAD + "expect:\n  mlflow:\n    metrics: {accuracy: '=> 0.9'}\n",
        "expect.mlflow.metrics.accuracy",
        "unknown operator",
        "==, !=, >=",
        5,
    ),
    "unknown task id": (
        HEAD + "expect:\n  tasks:\n    train_modl: success\n",
        "expect.tasks.train_modl",
        "unknown task id 'train_modl'",
        "did you mean 'train_model'? use one of preprocess_data, train_model, evaluate_and_register",
        5,
    ),
    "unknown dag id": (
        HEAD + "dag: train_pipeline\n",
        "dag",
        "unknown DAG id 'train_pipeline'",
        "use one of train_model_pipeline",
        3,
    ),
    "unknown task state": (
        HEAD + "expect:\n  tasks: {train_model: succeeded}\n",
        "expect.tasks.train_model",
        "'succeeded' is not allowed",
        "'success'",
        4,
    ),
    "unknown conf param": (
        HEAD + "conf:\n  min_acuracy: 0.9\n",
        "conf.min_acuracy",
        "unknown param",
        "did you mean 'min_accuracy'?",
        4,
    ),
    "reserved conf param": (
        HEAD + "conf: {model_name: mine}\n",
        "conf.model_name",
        "set per scenario by the runner",
        "remove 'model_name'",
        3,
    ),
    "conf param of the wrong type": (
        HEAD + "conf: {n_estimators: many}\n",
        "conf.n_estimators",
        "not of the param's type (integer)",
        "give a integer value the DAG accepts (default 50)",
        3,
    ),
    "conf param out of its range": (
        HEAD + "conf:\n  label_noise: 0.6\n",
        "conf.label_noise",
        "0.6 is above the maximum 0.5 of the param",
        "give a number value the DAG accepts (default 0.0)",
        4,
    ),
    "conf value that is not json": (
        HEAD + "conf: {dataset: 2024-01-01}\n",
        "conf.dataset",
        "not a JSON value",
        "quote it",
        3,
    ),
    "top-level expect with a list of runs": (
        HEAD + "expect: {dag_run: success}\nruns:\n  - expect: {dag_run: success}\n",
        "expect",
        "cannot be combined with a list of runs",
        "runs[i].expect",
        3,
    ),
    "fault on an unknown task": (
        HEAD + "runs:\n  - {}\n  - faults:\n      - {task: train}\n",
        "runs[1].faults[0].task",
        "unknown task id 'train'",
        "use one of preprocess_data",
        6,
    ),
    "fault try zero": (
        HEAD + "faults:\n  - task: train_model\n    tries: [0]\n",
        "faults[0].tries[0]",
        "greater than or equal to 1",
        "fit that bound",
        5,
    ),
    "duplicate key": (HEAD + "timeout: 10\ntimeout: 20\n", "timeout", "duplicate key", "keep one of them", 4),
    "unknown capability": (HEAD + "requires: [tpu]\n", "requires[0]", "'tpu' is not allowed", "'gpu'", 3),
    "log_contains on an unknown task": (
        HEAD + "expect:\n  log_contains: {evaluate: below threshold}\n",
        "expect.log_contains.evaluate",
        "unknown task id 'evaluate'",
        "evaluate_and_register",
        4,
    ),
    "success with a task expected to fail": (
        HEAD + "expect:\n  dag_run: success\n  tasks: {train_model: failed}\n",
        "expect.dag_run",
        "expects success while task(s) train_model",
        "dag_run: failed",
        4,
    ),
    "alias version zero": (
        HEAD + "expect:\n  mlflow:\n    registry:\n      aliases: {champion: 0}\n",
        "expect.mlflow.registry.aliases.champion",
        "greater than or equal to 1",
        "fit that bound",
        6,
    ),
    "try_number not a comparison": (
        HEAD + "expect:\n  tasks:\n    train_model: {try_number: [2]}\n",
        "expect.tasks.train_model.try_number",
        "must be a string, number, boolean or null",
        "'>= 0.9'",
        5,
    ),
    "name of the wrong type": (
        "apiVersion: mlops-sandbox/v1\nname: {a: 1}\n",
        "name",
        "valid string",
        "give a text value",
        2,
    ),
}


@pytest.mark.parametrize(("body", "path", "message", "fix", "line"), list(BAD.values()), ids=list(BAD))
def test_bad_input_names_file_path_and_fix(
    tmp_path: Path, dags_dir: Path, body: str, path: str, message: str, fix: str, line: int | None
) -> None:
    file = write(tmp_path, body, "bad.yaml")
    with pytest.raises(ScenarioLoadError) as info:
        load(file, dags_dir=dags_dir)
    err = info.value
    assert isinstance(err, ConfigError)
    matching = [i for i in err.issues if i.path == path and message in i.message]
    assert matching, f"no issue at {path!r} with {message!r} in: {[str(i) for i in err.issues]}"
    issue = matching[0]
    assert fix in issue.fix
    assert issue.line == line
    rendered = str(issue)
    assert rendered.startswith(f"{issue.file}:{line}: " if line else f"{issue.file}: ")
    assert issue.file.endswith("scenarios/bad.yaml")
    assert f"; fix: {issue.fix}" in rendered
    # The whole error (what the user sees) carries every issue line.
    assert rendered in str(err)


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
