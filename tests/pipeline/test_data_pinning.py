"""The same data, byte for byte: ``data_content_hash`` and ``data_source`` against real S3 and MLflow.

A run given a hash refuses any other split (in preprocess, before writing, and again in train); a run
given a saved split trains on exactly those bytes and records where they came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from .conftest import JobRun, PipelineRun, Platform

pytestmark = pytest.mark.slow

OTHER_HASH = "sha256:" + "0" * 64


def _ok(job: JobRun) -> dict:
    assert job.returncode == 0, job.output
    assert job.result is not None
    return job.result


def _keys(platform: Platform, prefix: str) -> list[str]:
    listed = platform.s3().list_objects_v2(Bucket=platform.data_bucket, Prefix=prefix)
    return sorted(o["Key"].removeprefix(prefix) for o in listed.get("Contents", []))


def _save_split(platform: Platform, run: PipelineRun, dest: str, tamper: bool = False) -> str:
    """Copy a run's split (CSVs + manifest) to ``dest`` as `sandbox reproduce --copy-data` does."""
    s3 = platform.s3()
    for name in ("train.csv", "test.csv", "manifest.json"):
        body = s3.get_object(Bucket=platform.data_bucket, Key=f"runs/{run.dag_run_id}/{name}")["Body"].read()
        if tamper and name == "test.csv":
            body = body.replace(b"\n1", b"\n2", 1)
        s3.put_object(Bucket=platform.data_bucket, Key=dest + name, Body=body)
    return f"s3://{platform.data_bucket}/{dest}"


@pytest.fixture(scope="module")
def produced(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> tuple[PipelineRun, dict]:
    """One preprocessed run on wine (its split is the "production data" of the tests below)."""
    from .conftest import new_pipeline_run

    run = new_pipeline_run(platform, "pinning", "prod", "shared", MLOPS_DATASET="wine", MLOPS_SEED="7")
    return run, _ok(run.job("preprocess", tmp_path_factory.mktemp("produced")))


def test_preprocess_with_the_expected_hash_runs_and_with_another_writes_nothing(
    produced: tuple[PipelineRun, dict], pipeline, platform: Platform, tmp_path: Path
) -> None:
    _, result = produced
    same = pipeline(
        "same", MLOPS_DATASET="wine", MLOPS_SEED="7", MLOPS_DATA_CONTENT_HASH=result["content_hash"]
    )
    job = same.job("preprocess", tmp_path)
    assert _ok(job)["content_hash"] == result["content_hash"]
    assert ", as expected)" in job.output

    # Another seed gives another split: refused before anything is written.
    other = pipeline(
        "other", MLOPS_DATASET="wine", MLOPS_SEED="8", MLOPS_DATA_CONTENT_HASH=result["content_hash"]
    )
    job = other.job("preprocess", tmp_path)
    assert job.returncode == 1, job.output
    assert "data content hash mismatch: the split generated from wine (seed 8" in job.output
    assert f"but this run expects {result['content_hash']} (DAG param data_content_hash)" in job.output
    assert _keys(platform, f"runs/{other.dag_run_id}/") == []


def test_a_saved_split_is_used_byte_for_byte_and_recorded(
    produced: tuple[PipelineRun, dict], pipeline, platform: Platform, tmp_path: Path
) -> None:
    prod, result = produced
    source = _save_split(platform, prod, "saved/pinning-ok/")
    # Default params (breast_cancer, seed 42) would generate other data: the source wins.
    replay = pipeline("replay", MLOPS_DATA_SOURCE=source, MLOPS_DATA_CONTENT_HASH=result["content_hash"])
    pre = _ok(replay.job("preprocess", tmp_path))
    assert pre["content_hash"] == result["content_hash"]
    assert pre["dataset"] == "wine"  # how the split was made: from its manifest
    s3 = platform.s3()
    for name in ("train.csv", "test.csv"):
        copied = s3.get_object(Bucket=platform.data_bucket, Key=f"runs/{replay.dag_run_id}/{name}")[
            "Body"
        ].read()
        original = s3.get_object(Bucket=platform.data_bucket, Key=f"runs/{prod.dag_run_id}/{name}")[
            "Body"
        ].read()
        assert copied == original
    manifest_key = f"runs/{replay.dag_run_id}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=platform.data_bucket, Key=manifest_key)["Body"].read())
    assert manifest["source"] == source and manifest["seed"] == 7

    train = _ok(replay.job("train", tmp_path, MLOPS_JOB_IMAGE="registry.example/mlops-jobs:1.2.3"))
    run = MlflowClient(tracking_uri=platform.mlflow_url).get_run(train["run_id"])
    assert run.data.params["data_content_hash"] == result["content_hash"]
    assert run.data.params["dataset"] == "wine"
    tags = run.data.tags
    assert tags["mlops.data_content_hash"] == result["content_hash"]
    assert tags["mlops.data_source"] == source
    assert tags["mlops.job_image"] == "registry.example/mlops-jobs:1.2.3"
    assert tags["mlops.code_version"] == "mlops_jobs==0.1.0"  # no MLOPS_GIT_SHA outside an image
    assert tags["mlops.jobs_version"] == "0.1.0"
    assert {
        "mlops.lib.scikit-learn",
        "mlops.lib.numpy",
        "mlops.lib.pandas",
        "mlops.lib.mlflow-skinny",
    } <= set(tags)
    # The existing contract is unchanged.
    assert tags["airflow.dag_run_id"] == replay.dag_run_id and tags["airflow.task_id"] == "train_model"


def test_a_tampered_or_missing_source_is_refused(
    produced: tuple[PipelineRun, dict], pipeline, platform: Platform, tmp_path: Path
) -> None:
    prod, _ = produced
    tampered = _save_split(platform, prod, "saved/pinning-tampered/", tamper=True)
    job = pipeline("tampered", MLOPS_DATA_SOURCE=tampered).job("preprocess", tmp_path)
    assert job.returncode == 1, job.output
    assert f"{tampered}test.csv does not match the hash in its manifest" in job.output

    missing = f"s3://{platform.data_bucket}/saved/never-copied/"
    job = pipeline("missing", MLOPS_DATA_SOURCE=missing).job("preprocess", tmp_path)
    assert job.returncode == 1, job.output
    assert f"{missing}train.csv is missing: data_source must name a folder holding train.csv" in job.output


def test_train_refuses_a_split_that_is_not_the_expected_one(
    produced: tuple[PipelineRun, dict], pipeline, platform: Platform, tmp_path: Path
) -> None:
    """preprocess ran without the check (or the split was replaced): train still refuses it."""
    run = pipeline("unchecked")
    _ok(run.job("preprocess", tmp_path))
    job = run.job("train", tmp_path, MLOPS_DATA_CONTENT_HASH=OTHER_HASH)
    assert job.returncode == 1, job.output
    assert f"but this run expects {OTHER_HASH}" in job.output
    assert "It was replaced after preprocess_data wrote it" in job.output
