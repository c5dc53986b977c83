"""From a production run to a scenario: what is pinned, how, and what is refused (no servers needed).

Every generated text is validated by the project's loader against the real ``dags/``, and its
expectations are checked against an observation equal to what production recorded: the scenario
must expect exactly what production observed.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import yaml

from sandbox.errors import ConfigError
from sandbox.reproduce import data, scenario, source
from sandbox.reproduce.access import Credentials
from sandbox.reproduce.scenario import Options, build, stable_failure, validate
from sandbox.scenarios.expectations import check
from sandbox.scenarios.loader import parse
from sandbox.scenarios.model import Scenario
from sandbox.scenarios.observations import (
    MlflowRunObservation,
    ModelVersionObservation,
    RegistryObservation,
    RunObservation,
    TaskObservation,
)

from . import runs
from .runs import HASH


def _build(run: source.ProductionRun, tmp_path: Path, **options) -> tuple[str, Scenario]:
    output = tmp_path / "scenarios" / "repro" / "run.yaml"
    text = build(run, Options(command="sandbox reproduce --airflow-url X", output=output, **options))
    validate(text, output)
    loaded, issues = parse(text, output)
    assert issues == [] and loaded is not None
    return text, loaded


def _as_observed(run: source.ProductionRun) -> RunObservation:
    """What the replay records when it behaves as production did (the scenario's own model from v1)."""
    obs = RunObservation(run.dag_id, "sbx__replay__1", run.state)
    for task in run.tasks.values():
        obs.tasks[task.task_id] = TaskObservation(task.task_id, task.state, task.try_number)
        obs.logs[task.task_id] = "\n".join(t.log_tail for t in task.tries)
    for fault in scenario.plan_faults(run):
        obs.logs[fault.task] += f"\nAirflowException: injected fault: {fault.message}"
    replayed = scenario.reproduced_mlflow_runs(run, scenario.plan_faults(run))
    obs.mlflow_runs = [
        MlflowRunObservation(r.run_id, r.status, r.metrics, r.params, r.tags) for r in replayed
    ]
    versions = [v for v in run.versions if v.run_id in {r.run_id for r in replayed}]
    registry = RegistryObservation("sbx-model", exists=bool(versions))
    for number, v in enumerate(versions, 1):
        registry.versions.append(ModelVersionObservation(number, v.run_id, dict(v.tags)))
        if v.tags.get("quality_gate") == "passed":
            registry.aliases["champion"] = number
    obs.registry = registry
    return obs


def test_a_failed_gate_pins_conf_data_metrics_and_the_gate_outcome(tmp_path: Path) -> None:
    run = runs.gate_failure()
    text, sc = _build(run, tmp_path)
    (spec,) = sc.plan()
    # Every resolved param with the DAG's types; the isolation params are the runner's.
    assert spec.conf == {
        **{"min_accuracy": 0.999, "n_estimators": 15, "max_depth": 4, "dataset": "wine"},
        **{"label_noise": 0.1, "seed": 7, "test_size": 0.2, "data_content_hash": HASH},
    }
    assert type(spec.conf["n_estimators"]) is int and type(spec.conf["min_accuracy"]) is float
    assert spec.faults == []  # both tries failed the same way: the gate fails again by itself
    expect = spec.expect
    assert expect.dag_run == "failed"
    assert expect.task_expectations()["evaluate_and_register"].state == "failed"
    assert expect.log_contains == {
        "evaluate_and_register": "quality gate failed: accuracy 0.8056 is below threshold 0.9990"
    }
    raw = yaml.safe_load(text)["expect"]
    # Params and tags are compared as text, exactly as MLflow stores them.
    assert (
        raw["mlflow"]["params"]["n_estimators"] == "15"
        and raw["mlflow"]["params"]["data_content_hash"] == HASH
    )
    assert raw["mlflow"]["tags"]["mlops.lib.scikit-learn"] == "1.9.1"
    assert raw["mlflow"]["tags"]["airflow.try_number"] == "1"
    assert "mlops.git_sha" not in raw["mlflow"]["tags"]  # provenance: a comment, not a check
    assert "#   mlops.git_sha: 0a1b2c3d" in text and "#   mlops.job_image: registry.example" in text
    assert raw["mlflow"]["metrics"]["accuracy"] == "0.8055545555555556..0.8055565555555556"
    assert raw["mlflow"]["registry"] == {
        "versions": 1,
        "aliases": {"champion": None},
        "version_tags": {"quality_gate": "failed", "quality_gate.metric": "accuracy",
                         "quality_gate.threshold": "0.9990", "quality_gate.value": "0.8056"},
    }  # fmt: skip
    assert "champion stayed on v2 in production" in text
    assert "PASSES while the bug is present" in text and "the gate should pass: dag_run: success" in text
    assert "experiment_name='train_model_pipeline', model_name='production-classifier'" in text

    # It expects what production observed, and notices a change.
    observed = _as_observed(run)
    assert check(expect, observed) == []
    observed.mlflow_runs[0].metrics["accuracy"] = 0.8333333333333334  # one more test sample right
    observed.registry.versions[0].tags["quality_gate"] = "passed"  # type: ignore[union-attr]
    paths = {m.path for m in check(expect, observed)}
    assert paths == {"expect.mlflow.metrics.accuracy", "expect.mlflow.registry.version_tags.quality_gate"}


def test_a_transient_failure_becomes_a_fault_on_the_same_try(tmp_path: Path) -> None:
    run = runs.transient_retry()
    text, sc = _build(run, tmp_path)
    (spec,) = sc.plan()
    (fault,) = spec.faults
    assert (fault.task, fault.tries) == ("train_model", [1])
    assert fault.message == "reproduces production's failed try 1 of train_model"
    assert (
        "# try 1 failed: AirflowException: Pod mlops-train-model-x1y2 returned a failure: node lost" in text
    )
    train = spec.expect.task_expectations()["train_model"]
    assert (train.state, str(train.try_number)) == ("success", "== 2")
    assert spec.expect.log_contains == {"train_model": f"injected fault: {fault.message}"}
    raw = yaml.safe_load(text)["expect"]["mlflow"]
    assert raw["runs"] == 1 and raw["tags"]["airflow.try_number"] == "2"
    assert raw["registry"]["aliases"] == {"champion": 1}
    assert spec.conf["n_estimators"] == 30 and spec.conf["dataset"] == "breast_cancer"
    assert check(spec.expect, _as_observed(run)) == []


def test_a_failed_try_that_logged_an_mlflow_run_is_not_counted_when_a_fault_replays_it(
    tmp_path: Path,
) -> None:
    run = runs.transient_retry()
    early = dataclasses.replace(runs.trained(try_number=1), run_id="f" * 32)
    run.mlflow_runs.insert(0, early)
    text, _ = _build(run, tmp_path)
    assert "runs: 1  # production logged 2; 1 from a try that the fault ends before the job starts" in text


def test_a_preprocess_failure_pins_the_job_error_and_nothing_trained(tmp_path: Path) -> None:
    run = runs.preprocess_failure()
    text, sc = _build(run, tmp_path)
    (spec,) = sc.plan()
    assert spec.faults == []
    assert spec.conf["dataset"] == "imagenet" and "data_content_hash" not in spec.conf
    assert "Production recorded no content hash (no MLflow run): the data is not pinned." in text
    assert spec.expect.log_contains == {
        "preprocess_data": "configuration error: unknown dataset 'imagenet'; valid datasets: "
        "breast_cancer, digits, iris, wine"
    }
    assert spec.expect.tasks["train_model"] == "upstream_failed"
    raw = yaml.safe_load(text)["expect"]["mlflow"]
    assert raw == {"runs": 0}


def test_copied_data_is_the_source_and_the_hash(tmp_path: Path) -> None:
    copied = data.Copied("s3://mlops-data/reproductions/r/", HASH, ["train.csv"], "s3://prod/runs/r/", 10)
    text, sc = _build(runs.gate_failure(), tmp_path, copied=copied)
    (spec,) = sc.plan()
    assert spec.conf["data_source"] == "s3://mlops-data/reproductions/r/"
    assert spec.conf["data_content_hash"] == HASH
    assert "Copied from s3://prod/runs/r/" in text


def test_a_run_on_a_saved_split_cannot_be_regenerated(tmp_path: Path) -> None:
    run = runs.gate_failure()
    run.conf["data_source"] = "s3://prod-data/curated/2026-11/"
    with pytest.raises(ConfigError, match="read its split from s3://prod-data/curated/2026-11/") as err:
        _build(run, tmp_path)
    assert "--copy-data" in err.value.fix


def test_gpu_training_requires_a_gpu(tmp_path: Path) -> None:
    run = runs.gate_failure()
    run.mlflow_runs = [runs.trained(gpu=True)]
    text, sc = _build(run, tmp_path)
    assert sc.requires == ["gpu"]
    assert yaml.safe_load(text)["expect"]["mlflow"]["tags"]["gpu.count"] == ">= 1"


def test_what_mlflow_recorded_wins_over_a_default_that_changed_since(tmp_path: Path) -> None:
    run = runs.gate_failure()
    del run.conf["n_estimators"]  # the run used the default of its day: 15 (MLflow's record)
    text, sc = _build(run, tmp_path)
    assert sc.plan()[0].conf["n_estimators"] == 15
    assert "n_estimators: 15  # as MLflow recorded it (DAG default says 100)" in text


def test_metric_tolerance_zero_pins_exact_values(tmp_path: Path) -> None:
    text, _ = _build(runs.gate_failure(), tmp_path, tolerance=0)
    assert yaml.safe_load(text)["expect"]["mlflow"]["metrics"]["accuracy"] == 0.8055555555555556


def test_a_run_that_trained_without_an_mlflow_run_says_how_runs_are_linked(tmp_path: Path) -> None:
    run = runs.gate_failure()
    run.mlflow_runs, run.versions = [], []
    with pytest.raises(ConfigError) as err:
        _build(run, tmp_path)
    assert "has no run tagged airflow.dag_id='train_model_pipeline' and airflow.dag_run_id=" in err.value.what
    assert (
        "tags every MLflow run with airflow.dag_id, airflow.dag_run_id and airflow.task_id" in err.value.fix
    )


def test_an_unfinished_run_is_refused(tmp_path: Path) -> None:
    run = runs.gate_failure()
    run.state = "running"
    with pytest.raises(ConfigError, match="is running: only a finished run can be reproduced"):
        _build(run, tmp_path)


def test_a_run_of_a_dag_that_differs_from_this_checkout_is_not_written(tmp_path: Path) -> None:
    run = runs.gate_failure()
    run.defaults["learning_rate"] = 0.1  # production's DAG has a param dags/ here does not
    with pytest.raises(ConfigError) as err:
        _build(run, tmp_path)
    assert "does not validate against this checkout" in err.value.what
    assert "conf.learning_rate: unknown param" in err.value.detail


def test_a_scenario_holding_a_credential_is_refused_naming_the_variable_only(tmp_path: Path) -> None:
    password = "s3cr3t-Pa55word"
    run = runs.gate_failure()
    run.conf["dataset"] = password  # a production value that happens to be the credential
    text = build(run, Options(command="sandbox reproduce", output=tmp_path / "x.yaml"))
    creds = Credentials({"MLOPS_REPRO_AIRFLOW_PASSWORD": password, "MLOPS_REPRO_AIRFLOW_USERNAME": "admin"})
    with pytest.raises(ConfigError) as err:
        scenario.check_no_secrets(text, creds)
    assert "MLOPS_REPRO_AIRFLOW_PASSWORD" in err.value.what
    assert password not in str(err.value)
    scenario.check_no_secrets(text.replace(password, "wine"), creds)


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (runs.gate_log(), "quality gate failed: accuracy 0.8056 is below threshold 0.9990"),
        ("mlops_jobs train: s3://mlops-data/runs/r/manifest.json is missing: did preprocess_data run", None),
        ("mlops_jobs train: data content hash mismatch: the split in s3://b/runs/r/ hashes to x",
         "data content hash mismatch: the split in"),
        ("mlops_jobs evaluate: done in 3.2s", None),
        ("AirflowException: Pod mlops-train returned a failure", None),
        ("mlops_jobs evaluate: run manual__2026-11-27T12:21:46+00:00 is gone", None),  # a timestamp
    ],
)  # fmt: skip
def test_only_stable_failure_text_is_pinned(log: str, expected: str | None) -> None:
    assert stable_failure(log, ["production-classifier", runs.RUN_ID]) == expected


def test_the_harness_and_the_jobs_agree_on_tags_files_and_hashes() -> None:
    """One fact, two packages (the jobs ship without the harness): a test keeps them in step."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jobs"))
    from mlops_jobs import data as jobs_data
    from mlops_jobs import provenance
    from mlops_jobs.config import Env, RunContext

    tags = RunContext("d", "r", "t", 1).tags()
    assert {source.DAG_ID_TAG, source.DAG_RUN_TAG, source.TASK_TAG, source.TRY_TAG} == set(tags)
    files = {"train.csv": b"a\n1\n", "test.csv": b"a\n2\n"}
    assert data.content_hash(files) == jobs_data.content_hash(files)
    assert data.SPLIT_FILES == jobs_data.FILES and data.run_prefix("r") == jobs_data.run_prefix("r")
    recorded = provenance.tags(
        Env({"MLOPS_GIT_SHA": "x", "MLOPS_JOB_IMAGE": "i", "MLOPS_CHART_VERSION": "c"}),
        {"content_hash": HASH},
    )
    named = {t for t in (*scenario.PINNED_TAGS, *scenario.PROVENANCE_TAGS) if t.startswith("mlops.")}
    assert named <= set(recorded)
    assert any(t.startswith(scenario.PINNED_TAG_PREFIXES) for t in recorded)
