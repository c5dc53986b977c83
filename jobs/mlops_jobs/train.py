"""train: fit a RandomForest on the run's split, log it to MLflow and register a model version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_jobs import data, gpu, provenance
from mlops_jobs.config import (
    Env,
    RunContext,
    data_bucket,
    expected_content_hash,
    tracking_uri,
    write_xcom,
)
from mlops_jobs.timing import Stopwatch

if TYPE_CHECKING:
    import numpy as np

# RandomForest holds sklearn Tree objects, which skops refuses to load unless trusted by name.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


@dataclass(frozen=True)
class TrainConfig:
    context: RunContext
    n_estimators: int
    max_depth: int
    seed: int
    experiment_name: str
    model_name: str
    tracking_uri: str
    bucket: str
    expected_hash: str = ""  # "" = no check

    @classmethod
    def from_env(cls, env: Env) -> TrainConfig:
        return cls(
            context=RunContext.from_env(env),
            n_estimators=env.integer("MLOPS_N_ESTIMATORS", low=1),
            max_depth=env.integer("MLOPS_MAX_DEPTH", low=1),
            seed=env.integer("MLOPS_SEED", low=0),
            experiment_name=env.text("MLOPS_EXPERIMENT_NAME"),
            model_name=env.text("MLOPS_MODEL_NAME"),
            tracking_uri=tracking_uri(env),
            bucket=data_bucket(env),
            expected_hash=expected_content_hash(env),
        )


def pip_requirements() -> list[str]:
    """The serving environment: the versions this job ran with (the image's pins).

    Listing them explicitly skips MLflow's inference, which re-imports the model in a subprocess
    (~5 s of every train run).
    """
    return [f"{dist}=={version}" for dist, version in provenance.library_versions().items()]


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """accuracy, f1, precision, recall, roc_auc: binary for two classes, macro / one-vs-rest above."""
    from sklearn import metrics

    y_pred = classes[proba.argmax(axis=1)]
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    pos = {"pos_label": classes[1]} if binary else {}
    return {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "f1": float(metrics.f1_score(y_true, y_pred, average=average, zero_division=0, **pos)),
        "precision": float(metrics.precision_score(y_true, y_pred, average=average, zero_division=0, **pos)),
        "recall": float(metrics.recall_score(y_true, y_pred, average=average, zero_division=0, **pos)),
        "roc_auc": float(
            metrics.roc_auc_score(y_true, proba[:, 1])
            if binary
            else metrics.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)
        ),
    }


def fit(cfg: TrainConfig, split: data.Split) -> tuple[Any, dict[str, float]]:
    """The model and its test-set metrics."""
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(
        n_estimators=cfg.n_estimators, max_depth=cfg.max_depth, random_state=cfg.seed, n_jobs=-1
    )
    model.fit(split.train[split.features], split.train[data.TARGET])
    x_test, y_test = split.test[split.features], split.test[data.TARGET]
    return model, classification_metrics(y_test.to_numpy(), model.predict_proba(x_test), model.classes_)


def log_and_register(
    cfg: TrainConfig, split: data.Split, model: Any, scores: dict[str, float], env: Env
) -> dict[str, Any]:
    """One MLflow run with params, metrics and the model; registers a version of ``model_name``."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(cfg.tracking_uri)
    experiment = mlflow.set_experiment(cfg.experiment_name)
    manifest = split.manifest
    # The experiment named explicitly: when two DAG runs create a new experiment at once, MLflow's
    # set_experiment returns the one the other created without making it active (mlflow 3.17
    # fluent.py), and a bare start_run would log into 'Default'.
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=cfg.context.dag_run_id) as active:
        mlflow.set_tags({**cfg.context.tags(), **gpu.detect().tags(), **provenance.tags(env, manifest)})
        mlflow.log_params(
            {
                "dataset": manifest["dataset"],
                "data_content_hash": manifest["content_hash"],
                "label_noise": manifest["label_noise"],
                "test_size": manifest["test_size"],
                "seed": cfg.seed,
                "n_estimators": cfg.n_estimators,
                "max_depth": cfg.max_depth,
                "n_train": len(split.train),
                "n_test": len(split.test),
            }
        )
        mlflow.log_metrics(scores)
        example = split.test[split.features].head(5)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            pip_requirements=pip_requirements(),
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            registered_model_name=cfg.model_name,
        )
    # The version this run created, from the registry's answer; never a run tag such as
    # mlflow.log-model.history, which lists logged models and is no version.
    if info.registered_model_version is None:
        raise RuntimeError(f"MLflow returned no registered version of {cfg.model_name!r}")
    return {
        "run_id": active.info.run_id,
        "experiment_id": experiment.experiment_id,
        "model_name": cfg.model_name,
        "model_version": int(info.registered_model_version),
    }


# Tags set on earlier tries' MLflow runs by a retry (the story of a DAG run stays readable in the UI).
REUSED_BY_TAG = "mlops.reused_by_try"
SUPERSEDED_BY_TAG = "mlops.superseded_by_try"


def earlier_result(cfg: TrainConfig) -> dict[str, Any] | None:
    """Train is idempotent per DAG run: what an earlier try of this task in this DAG run registered.

    A try can register its version and still fail (its pod or the tracking server dies before the run
    ends), and Airflow then retries train. Training again would register a second version of the same
    data and params that the gate never looks at. So the retry looks up the DAG run's earlier training
    runs by their Airflow tags: the newest one with a READY version is reused (ended as FINISHED if it
    was left running, tagged ``mlops.reused_by_try``) and its version handed on; earlier runs without a
    version that were left running are ended as FAILED and tagged ``mlops.superseded_by_try``. None
    when there is nothing to reuse (the first try, or no earlier try got as far as registering).
    """
    if cfg.context.try_number <= 1:
        return None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.experiment_name)
    if experiment is None:
        return None
    ctx = cfg.context
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"tags.`airflow.dag_run_id` = '{ctx.dag_run_id}' and tags.`airflow.task_id` = '{ctx.task_id}'"
        ),
        order_by=["attributes.start_time DESC"],
    )
    this_try = str(ctx.try_number)
    reused: dict[str, Any] | None = None
    for earlier in runs:
        run_id = earlier.info.run_id
        if earlier.data.tags.get("airflow.try_number") == this_try:
            continue
        versions = [] if reused else [
            v for v in client.search_model_versions(f"name = '{cfg.model_name}' and run_id = '{run_id}'")
            if v.status == "READY"
        ]  # fmt: skip
        if versions:
            if earlier.info.status == "RUNNING":
                client.set_terminated(run_id, "FINISHED")
            client.set_tag(run_id, REUSED_BY_TAG, this_try)
            reused = {
                "run_id": run_id,
                "experiment_id": experiment.experiment_id,
                "model_name": cfg.model_name,
                "model_version": min(int(v.version) for v in versions),
            }
        elif earlier.info.status == "RUNNING":
            client.set_terminated(run_id, "FAILED")
            client.set_tag(run_id, SUPERSEDED_BY_TAG, this_try)
    return reused


def run(env: Env | None = None) -> dict[str, Any]:
    env = env or Env()
    cfg = TrainConfig.from_env(env)
    reused = earlier_result(cfg)
    if reused is not None:
        print(
            f"train: try {cfg.context.try_number} reuses {cfg.model_name} v{reused['model_version']}, "
            f"registered by an earlier try of DAG run {cfg.context.dag_run_id} (MLflow run "
            f"{reused['run_id']}): train is idempotent per DAG run"
        )
        write_xcom(reused, env)
        return reused
    watch = Stopwatch()
    # Data first: a missing split fails in a second instead of after the slow imports.
    split = data.read_split(cfg.bucket, cfg.context.dag_run_id)
    data.verify_content_hash(
        cfg.expected_hash,
        split.manifest["content_hash"],
        f"the split in s3://{cfg.bucket}/{data.run_prefix(cfg.context.dag_run_id)}",
        "It was replaced after preprocess_data wrote it: clear the DAG run from preprocess_data.",
    )
    watch.lap("data")
    # Imported here only to time them apart: on small data they are most of the step.
    import mlflow.sklearn  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    watch.lap("imports")
    model, scores = fit(cfg, split)
    watch.lap("fit")
    result = log_and_register(cfg, split, model, scores, env)
    watch.lap("mlflow")
    print(
        f"train: run {result['run_id']} registered {cfg.model_name} v{result['model_version']}; "
        + ", ".join(f"{k}={v:.4f}" for k, v in scores.items())
    )
    print(f"train: timings {watch}")
    write_xcom(result, env)
    return result
