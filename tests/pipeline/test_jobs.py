"""The job programs against a real MLflow tracking server and a real S3 server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mlflow.tracking import MlflowClient

from .conftest import PipelineRun, Platform


def _client(platform: Platform) -> MlflowClient:
    return MlflowClient(tracking_uri=platform.mlflow_url, registry_uri=platform.mlflow_url)


def _full_run(run: PipelineRun, tmp: Path) -> tuple[dict, dict | None, str]:
    pre = run.job("preprocess", tmp)
    assert pre.returncode == 0, pre.output
    train = run.job("train", tmp)
    assert train.returncode == 0, train.output
    evaluate = run.job("evaluate", tmp, MLOPS_TRAIN_RESULT=json.dumps(train.result))
    return train.result, evaluate.result, evaluate.output


def test_smoke(pipeline: Callable[..., PipelineRun], platform: Platform, tmp_path: Path) -> None:
    run = pipeline()
    pre = run.job("preprocess", tmp_path)
    print(pre.output, pre.seconds)
    train = run.job("train", tmp_path)
    print(train.output, train.seconds)
    ev = run.job("evaluate", tmp_path, MLOPS_TRAIN_RESULT=json.dumps(train.result))
    print(ev.output, ev.seconds)
    assert ev.returncode == 0
