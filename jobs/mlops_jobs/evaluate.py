"""evaluate: gate the exact run/version train produced; promote it to ``champion`` only if it passes.

The recipe gated "the latest run of the experiment", which races with any other run (a manual run,
a retry, a second scenario): here the train step's XCom names the run and version to judge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlops_jobs.config import ConfigError, Env, GateFailed, JobFailed, tracking_uri, write_xcom
from mlops_jobs.timing import Stopwatch

CHAMPION_ALIAS = "champion"
GATE_TAG = "quality_gate"
GATE_METRIC = "accuracy"


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    model_version: int

    @classmethod
    def parse(cls, raw: str) -> TrainResult:
        try:
            value = json.loads(raw)
        except ValueError:
            raise ConfigError(f"MLOPS_TRAIN_RESULT is not JSON: {raw[:200]!r}") from None
        if not isinstance(value, dict) or not {"run_id", "model_name", "model_version"} <= value.keys():
            raise ConfigError(
                "MLOPS_TRAIN_RESULT must be train_model's XCom with run_id, model_name and model_version; "
                f"got {raw[:200]!r}"
            )
        return cls(str(value["run_id"]), str(value["model_name"]), int(value["model_version"]))


@dataclass(frozen=True)
class EvaluateConfig:
    train: TrainResult
    model_name: str
    experiment_name: str
    min_accuracy: float
    tracking_uri: str

    @classmethod
    def from_env(cls, env: Env) -> EvaluateConfig:
        train = TrainResult.parse(env.text("MLOPS_TRAIN_RESULT", "the DAG passes train_model's XCom"))
        model_name = env.text("MLOPS_MODEL_NAME")
        if train.model_name != model_name:
            raise ConfigError(
                f"train_model registered {train.model_name!r} but this run's model_name is {model_name!r}"
            )
        return cls(
            train=train,
            model_name=model_name,
            experiment_name=env.text("MLOPS_EXPERIMENT_NAME"),
            min_accuracy=env.number("MLOPS_MIN_ACCURACY", 0.0, 1.0),
            tracking_uri=tracking_uri(env),
        )


def run(env: Env | None = None) -> dict[str, Any]:
    env = env or Env()
    cfg = EvaluateConfig.from_env(env)
    watch = Stopwatch()
    from mlflow.tracking import MlflowClient

    watch.lap("imports")
    try:
        return _gate(cfg, MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri), env)
    finally:
        watch.lap("mlflow")
        print(f"evaluate: timings {watch}")


def _gate(cfg: EvaluateConfig, client: Any, env: Env) -> dict[str, Any]:
    name, version = cfg.model_name, str(cfg.train.model_version)
    model_version = client.get_model_version(name, version)
    if model_version.run_id != cfg.train.run_id:
        raise JobFailed(
            f"{name} v{version} comes from run {model_version.run_id}, not {cfg.train.run_id}: not gating it"
        )
    run = client.get_run(cfg.train.run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    if experiment.name != cfg.experiment_name:
        raise JobFailed(
            f"run {run.info.run_id} is in experiment {experiment.name!r}, not {cfg.experiment_name!r}"
        )
    if GATE_METRIC not in run.data.metrics:
        raise JobFailed(f"run {run.info.run_id} has no {GATE_METRIC!r} metric to gate on")

    value = run.data.metrics[GATE_METRIC]
    passed = value >= cfg.min_accuracy
    for key, tag in (
        (GATE_TAG, "passed" if passed else "failed"),
        (f"{GATE_TAG}.metric", GATE_METRIC),
        (f"{GATE_TAG}.value", f"{value:.4f}"),
        (f"{GATE_TAG}.threshold", f"{cfg.min_accuracy:.4f}"),
    ):
        client.set_model_version_tag(name, version, key, tag)
    result = {
        "model_name": name,
        "model_version": int(version),
        "run_id": run.info.run_id,
        "metric": GATE_METRIC,
        "value": value,
        "threshold": cfg.min_accuracy,
        "passed": passed,
    }
    if not passed:
        # The alias stays where it was: the previous champion keeps serving. A retry would gate the
        # same run with the same result: GateFailed is final (exitcodes.GATE_FAILED).
        raise GateFailed(
            f"quality gate failed: {GATE_METRIC} {value:.4f} is below threshold {cfg.min_accuracy:.4f} "
            f"({name} v{version}, run {run.info.run_id})"
        )
    # Aliases replace the deprecated stage transitions (transition_model_version_stage).
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    print(
        f"evaluate: quality gate passed: {GATE_METRIC} {value:.4f} >= {cfg.min_accuracy:.4f}; "
        f"{name} v{version} is now {CHAMPION_ALIAS!r}"
    )
    write_xcom(result, env)
    return result
