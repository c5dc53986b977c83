"""The job programs against a real MLflow tracking server and a real S3 server (moto).

Each job runs as ``python -m mlops_jobs <step>`` in a subprocess with the job-contract environment,
exactly as the pods and ``LocalJobOperator`` run it. Full runs are the expensive part (a train
job is 10-20 s, mostly imports), so one module-scoped history of three runs serves several tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from .conftest import JOBS_DIR, JobRun, PipelineRun, Platform, new_pipeline_run

pytestmark = pytest.mark.slow

Runs = Callable[..., PipelineRun]


def _client(platform: Platform) -> MlflowClient:
    return MlflowClient(tracking_uri=platform.mlflow_url, registry_uri=platform.mlflow_url)


def _aliases(platform: Platform, model_name: str) -> dict[str, int]:
    aliases = _client(platform).get_registered_model(model_name).aliases
    return {alias: int(version) for alias, version in aliases.items()}


def _ok(job: JobRun) -> dict:
    assert job.returncode == 0, job.output
    assert job.result is not None
    return job.result


def _train(run: PipelineRun, tmp: Path) -> dict:
    _ok(run.job("preprocess", tmp))
    return _ok(run.job("train", tmp))


def _evaluate(run: PipelineRun, tmp: Path, train: dict) -> JobRun:
    return run.job("evaluate", tmp, MLOPS_TRAIN_RESULT=json.dumps(train))


@dataclass
class History:
    """Three DAG runs of one model: two that pass the gate, then a weak one that fails it."""

    runs: list[PipelineRun] = field(default_factory=list)
    trains: list[dict] = field(default_factory=list)
    evaluations: list[JobRun] = field(default_factory=list)
    champion_after: list[dict[str, int]] = field(default_factory=list)
    train_outputs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def history(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> History:
    tmp = tmp_path_factory.mktemp("history")
    result = History()
    for name, threshold in (("run1", "0.85"), ("run2", "0.85"), ("weak", "0.999")):
        run = new_pipeline_run(platform, "history", name, "shared", MLOPS_MIN_ACCURACY=threshold)
        _ok(run.job("preprocess", tmp))
        train = run.job("train", tmp)
        result.runs.append(run)
        result.trains.append(_ok(train))
        result.train_outputs.append(train.output)
        result.evaluations.append(_evaluate(run, tmp, result.trains[-1]))
        result.champion_after.append(_aliases(platform, run.model_name))
    return result


def test_two_passing_runs_register_versions_1_and_2_with_champion_on_2(history: History) -> None:
    assert [t["model_version"] for t in history.trains] == [1, 2, 3]
    for evaluation in history.evaluations[:2]:
        assert evaluation.returncode == 0, evaluation.output
        assert "quality gate passed" in evaluation.output
    assert history.champion_after[:2] == [{"champion": 1}, {"champion": 2}]


def test_failing_gate_keeps_champion_tags_the_version_and_names_the_threshold(
    history: History, platform: Platform
) -> None:
    evaluation, train = history.evaluations[2], history.trains[2]
    client = _client(platform)
    accuracy = client.get_run(train["run_id"]).data.metrics["accuracy"]
    assert evaluation.returncode == 3  # mlops_jobs.exitcodes.GATE_FAILED: final, not retried
    assert f"quality gate failed: accuracy {accuracy:.4f} is below threshold 0.9990" in evaluation.output
    assert history.champion_after[2] == {"champion": 2}
    name = train["model_name"]
    tags = [client.get_model_version(name, str(v)).tags for v in (1, 2, 3)]
    assert [t["quality_gate"] for t in tags] == ["passed", "passed", "failed"]
    assert tags[2]["quality_gate.metric"] == "accuracy"
    assert tags[2]["quality_gate.threshold"] == "0.9990"


def test_runs_carry_airflow_ids_params_metrics_and_data_hash(history: History, platform: Platform) -> None:
    client = _client(platform)
    for run, train in zip(history.runs, history.trains, strict=True):
        mlflow_run = client.get_run(train["run_id"])
        assert mlflow_run.data.tags["airflow.dag_run_id"] == run.dag_run_id
        assert mlflow_run.data.tags["airflow.dag_id"] == "train_model_pipeline"
        assert mlflow_run.data.tags["airflow.task_id"] == "train_model"
        assert mlflow_run.data.tags["airflow.try_number"] == "1"
        assert "gpu.count" not in mlflow_run.data.tags  # no GPU here: no misleading GPU tags
        assert set(mlflow_run.data.metrics) >= {"accuracy", "f1", "precision", "recall", "roc_auc"}
        assert mlflow_run.data.params["dataset"] == "breast_cancer"
        assert mlflow_run.data.params["n_estimators"] == "20"
        assert mlflow_run.data.params["data_content_hash"].startswith("sha256:")
    # Same dataset, noise and seed: byte-identical splits under different run ids.
    hashes = {client.get_run(t["run_id"]).data.params["data_content_hash"] for t in history.trains}
    assert len(hashes) == 1
    assert all("train: timings data" in out for out in history.train_outputs)


def test_versions_come_from_the_registry_and_use_aliases_not_stages(
    history: History, platform: Platform
) -> None:
    """Recipe bugs: the version read from the ``mlflow.log-model.history`` tag; stage transitions."""
    client = _client(platform)
    for train in history.trains:
        (version,) = client.search_model_versions(
            f"name = '{train['model_name']}' and run_id = '{train['run_id']}'"
        )
        assert int(version.version) == train["model_version"]
        assert train["experiment_id"] == client.get_run(train["run_id"]).info.experiment_id
        assert version.current_stage == "None"


def test_registered_model_loads_with_signature_and_pinned_requirements(
    history: History, platform: Platform
) -> None:
    import mlflow.pyfunc

    model_uri = f"models:/{history.trains[1]['model_name']}@champion"
    mlflow.set_tracking_uri(platform.mlflow_url)
    model = mlflow.pyfunc.load_model(model_uri)
    assert model.metadata.signature is not None
    assert model.metadata.signature.inputs.input_names()[:2] == ["mean radius", "mean texture"]
    assert model.metadata.saved_input_example_info is not None
    requirements = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().split()
    assert any(r.startswith("scikit-learn==") for r in requirements)
    assert any(r.startswith("skops==") for r in requirements)


def test_artifacts_go_through_the_tracking_servers_proxy(history: History, platform: Platform) -> None:
    """Recipe bug: ``--default-artifact-root s3://`` made every client write to S3 directly.

    What the server answers decides it: a run's artifact URI is ``mlflow-artifacts:/`` (the proxy)
    only when the server proxies; with ``--default-artifact-root s3://...`` it is ``s3://...``.
    (The jobs' environment is no evidence: with AWS_ENDPOINT_URL_S3 they can reach S3 directly.)
    """
    # The server the local backend started from the charts' values (its recorded command line).
    assert any(a.startswith("--artifacts-destination=s3://") for a in platform.mlflow_argv)
    direct = ("--default-artifact-root", "--no-serve-artifacts")
    assert not any(a.startswith(direct) for a in platform.mlflow_argv)
    for train in history.trains:
        assert _client(platform).get_run(train["run_id"]).info.artifact_uri.startswith("mlflow-artifacts:/")
    listed = platform.s3().list_objects_v2(Bucket=platform.artifacts_bucket, MaxKeys=1000)
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert len([k for k in keys if k.endswith("/MLmodel")]) >= 3, keys[:20]
    assert any(k.endswith("model.skops") for k in keys), keys[:20]


def test_interleaved_runs_each_gate_their_own_run(pipeline: Runs, platform: Platform, tmp_path: Path) -> None:
    """Recipe bug: the gate judged "the latest run", so one run was promoted on another's metrics.

    Both runs train concurrently; whichever finishes last, a latest-run gate gets one verdict wrong.
    """
    noisy = pipeline("noisy", MLOPS_LABEL_NOISE="0.4")  # far below the 0.85 threshold
    clean = pipeline("clean")
    with ThreadPoolExecutor(2) as pool:
        noisy_train, clean_train = pool.map(lambda run: _train(run, tmp_path), (noisy, clean))
        noisy_eval, clean_eval = pool.map(
            lambda pair: _evaluate(pair[0], tmp_path, pair[1]), ((noisy, noisy_train), (clean, clean_train))
        )

    assert noisy_eval.returncode != 0
    assert "quality gate failed: accuracy" in noisy_eval.output
    assert clean_eval.returncode == 0, clean_eval.output
    client, name = _client(platform), noisy.model_name
    assert client.get_model_version(name, str(noisy_train["model_version"])).tags["quality_gate"] == "failed"
    assert client.get_model_version(name, str(clean_train["model_version"])).tags["quality_gate"] == "passed"
    assert _aliases(platform, name) == {"champion": clean_train["model_version"]}
    # Gating the noisy run again (a retry) does not move champion either.
    assert _evaluate(noisy, tmp_path, noisy_train).returncode != 0
    assert _aliases(platform, name) == {"champion": clean_train["model_version"]}


# Loaded as sitecustomize by the train job's interpreter: another DAG run creates the experiment between
# this job's lookup and its create, the interleaving two first runs of a new experiment can hit.
EXPERIMENT_RACE = """
import sys
from mlflow.tracking._tracking_service.client import TrackingServiceClient

_lookup = TrackingServiceClient.get_experiment_by_name


def _other_run_creates_it_first(self, name):
    if sys._getframe(1).f_code.co_name == "set_experiment" and _lookup(self, name) is None:
        self.create_experiment(name)
        print("race: another run created the experiment first", file=sys.stderr)
        return None
    return _lookup(self, name)


TrackingServiceClient.get_experiment_by_name = _other_run_creates_it_first
"""


def test_train_logs_into_its_experiment_when_another_run_creates_it_first(
    pipeline: Runs, platform: Platform, tmp_path: Path
) -> None:
    """Found by CI in the interleaved test: MLflow's set_experiment, losing the creation race, returns
    the experiment without making it active, and the run went into 'Default' (evaluate then refused it).
    The race is forced here, in the real job against the real server."""
    race = tmp_path / "race"
    race.mkdir()
    (race / "sitecustomize.py").write_text(EXPERIMENT_RACE)
    run = pipeline()
    _ok(run.job("preprocess", tmp_path))
    train = run.job("train", tmp_path, PYTHONPATH=f"{race}{os.pathsep}{JOBS_DIR}")
    assert "race: another run created the experiment first" in train.output
    result = _ok(train)
    client = _client(platform)
    experiment = client.get_experiment_by_name(run.experiment_name)
    assert experiment is not None
    assert client.get_run(result["run_id"]).info.experiment_id == experiment.experiment_id
    evaluation = _evaluate(run, tmp_path, result)  # the gate accepts the run as its experiment's
    assert evaluation.returncode == 0, evaluation.output


def test_preprocess_writes_the_split_and_manifest(pipeline: Runs, platform: Platform, tmp_path: Path) -> None:
    run = pipeline(MLOPS_DATASET="wine", MLOPS_LABEL_NOISE="0.1")
    result = _ok(run.job("preprocess", tmp_path))
    s3 = platform.s3()
    prefix = f"runs/{run.dag_run_id}/"
    listed = s3.list_objects_v2(Bucket=platform.data_bucket, Prefix=prefix)["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        prefix + f for f in ("manifest.json", "test.csv", "train.csv")
    ]
    body = s3.get_object(Bucket=platform.data_bucket, Key=prefix + "manifest.json")["Body"].read()
    manifest = json.loads(body)
    assert manifest["dataset"] == "wine"
    assert manifest["rows"] == {"train": 142, "test": 36}  # 178 rows, test_size 0.2
    assert manifest["classes"] == [0, 1, 2]
    assert result["content_hash"] == manifest["content_hash"]


def test_unknown_dataset_fails_preprocess_with_the_valid_names(
    pipeline: Runs, platform: Platform, tmp_path: Path
) -> None:
    run = pipeline(MLOPS_DATASET="imagenet")
    job = run.job("preprocess", tmp_path)
    assert job.returncode != 0
    assert "unknown dataset 'imagenet'; valid datasets: breast_cancer, digits, iris, wine" in job.output
    listed = platform.s3().list_objects_v2(Bucket=platform.data_bucket, Prefix=f"runs/{run.dag_run_id}/")
    assert listed.get("KeyCount", 0) == 0


def test_train_without_preprocessed_data_says_what_is_missing(pipeline: Runs, tmp_path: Path) -> None:
    run = pipeline("never-preprocessed")
    job = run.job("train", tmp_path)
    assert job.returncode == 1
    assert f"runs/{run.dag_run_id}/manifest.json is missing: did preprocess_data run" in job.output


@pytest.mark.parametrize(
    ("drop", "override", "message"),
    [
        ("MLFLOW_TRACKING_URI", {}, "MLFLOW_TRACKING_URI is not set"),
        ("MLOPS_EXPERIMENT_NAME", {}, "MLOPS_EXPERIMENT_NAME is not set"),
        (None, {"MLFLOW_TRACKING_URI": "http://admin:hunter2@127.0.0.1:1"}, "carries a password"),
        (None, {"MLOPS_TRAIN_RESULT": "null"}, "MLOPS_TRAIN_RESULT must be train_model's XCom"),
        (None, {"MLOPS_MIN_ACCURACY": "1.5"}, "MLOPS_MIN_ACCURACY=1.5 must be in [0.0, 1.0]"),
    ],
)
def test_evaluate_refuses_an_incomplete_environment(
    pipeline: Runs, tmp_path: Path, drop: str | None, override: dict[str, str], message: str
) -> None:
    """Recipe bug: the evaluate pod ran without EXPERIMENT_NAME / MLFLOW_TRACKING_URI.

    Without a tracking URI MLflow would silently use a local store; the job must stop instead.
    """
    run = pipeline()
    train = {"run_id": "0" * 32, "model_name": run.model_name, "model_version": 1}
    extra = {"MLOPS_TRAIN_RESULT": json.dumps(train), **override}
    job = run.job("evaluate", tmp_path, _drop=drop, **extra)
    assert job.returncode == 2, job.output
    assert message in job.output
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_retried_train_reuses_the_version_its_killed_first_try_registered(
    pipeline: Runs, platform: Platform, tmp_path: Path
) -> None:
    """Train is idempotent per DAG run: try 1 registered its version, then died before its MLflow run
    ended (its pod, or the tracking server, killed); try 2 hands on that version instead of a second."""
    run = pipeline()
    first = _train(run, tmp_path)
    client = _client(platform)
    client.update_run(first["run_id"], status="RUNNING")  # what a try killed after registering leaves
    retry = run.job("train", tmp_path, MLOPS_TRY_NUMBER="2")
    assert _ok(retry) == first
    assert f"reuses {run.model_name} v{first['model_version']}" in retry.output
    assert [v.version for v in client.search_model_versions(f"name = '{run.model_name}'")] == ["1"]
    earlier = client.get_run(first["run_id"])
    assert earlier.info.status == "FINISHED"
    assert earlier.data.tags["mlops.reused_by_try"] == "2"
    runs = client.search_runs([first["experiment_id"]], f"tags.`airflow.dag_run_id` = '{run.dag_run_id}'")
    assert len(runs) == 1


def test_a_retried_train_supersedes_an_earlier_try_that_registered_nothing(
    pipeline: Runs, platform: Platform, tmp_path: Path
) -> None:
    """Try 1 died before registering (its run left RUNNING): try 2 trains and registers version 1, and
    the abandoned run is ended FAILED and says which try superseded it."""
    run = pipeline()
    _ok(run.job("preprocess", tmp_path))
    client = _client(platform)
    exp_id = client.create_experiment(run.experiment_name)
    tags = {"airflow.dag_run_id": run.dag_run_id, "airflow.task_id": "train_model", "airflow.try_number": "1"}
    abandoned = client.create_run(exp_id, tags=tags).info.run_id
    retry = _ok(run.job("train", tmp_path, MLOPS_TRY_NUMBER="2"))
    assert retry["model_version"] == 1 and retry["run_id"] != abandoned
    earlier = client.get_run(abandoned)
    assert earlier.info.status == "FAILED"
    assert earlier.data.tags["mlops.superseded_by_try"] == "2"
    assert client.get_run(retry["run_id"]).info.status == "FINISHED"
