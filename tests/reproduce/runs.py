"""Production runs as ``sandbox reproduce`` reads them, for the tests that need no server.

Shaped after real reads of a sandbox playing production (the log lines are what Airflow 3.3 and the
jobs print); plain data, the input type of ``sandbox.reproduce.scenario``.
"""

from __future__ import annotations

from sandbox.reproduce.source import MlflowRecord, ProductionRun, TaskRecord, TryRecord, VersionRecord

AIRFLOW = "https://airflow.prod.example"
MLFLOW = "https://mlflow.prod.example"
HASH = "sha256:2f2630d0c22e4a69ba85717f9d7109febd3af36d754db4820a70fc515315d19d"
RUN_ID = "1acaa903da0b4a8cbd35c1313195e42a"
DEFAULTS = {
    "experiment_name": "train_model_pipeline",
    "model_name": "production-classifier",
    "min_accuracy": 0.85,
    "n_estimators": 100,
    "max_depth": 10,
    "dataset": "breast_cancer",
    "label_noise": 0.0,
    "seed": 42,
    "test_size": 0.2,
    "data_content_hash": "",
    "data_source": "",
}
LIBS = {"mlops.lib.scikit-learn": "1.9.1", "mlops.lib.numpy": "2.4.6", "mlops.lib.pandas": "3.1.1"}


def gate_log(value: str = "0.8056", threshold: str = "0.9990", version: int = 3) -> str:
    job = (
        f"mlops_jobs evaluate: quality gate failed: accuracy {value} is below threshold {threshold} "
        f"(production-classifier v{version}, run {RUN_ID})"
    )
    return "\n".join(
        [
            "[2026-11-27T12:23:50.419593Z] INFO running /opt/venv/bin/python -m mlops_jobs evaluate",
            f"[2026-11-27T12:23:53.834382Z] INFO {job}",
            "[2026-11-27T12:23:54.465945Z] ERROR Task failed with exception",
            "Traceback (most recent call last):",
            '  File "/opt/airflow/dags/mlops_pipeline/operators.py", line 61, in execute',
            f"AirflowException: -m mlops_jobs evaluate exited with 1: {job}",
            "[2026-11-27T12:23:54.472517Z] INFO ::endgroup::",
        ]
    )


NODE_LOST = "\n".join(
    [
        "[2026-11-27T12:22:39.903986Z] ERROR Task failed with exception",
        "Traceback (most recent call last):",
        '  File "/opt/airflow/providers/cncf/kubernetes/operators/pod.py", line 640, in execute',
        "AirflowException: Pod mlops-train-model-x1y2 returned a failure: node lost",
        "[2026-11-27T12:22:39.965979Z] INFO ::endgroup::",
    ]
)


def trained(try_number: int = 1, gpu: bool = False) -> MlflowRecord:
    tags = {
        "airflow.dag_id": "train_model_pipeline",
        "airflow.dag_run_id": "manual__2026-11-27T12:21:46+00:00",
        "airflow.task_id": "train_model",
        "airflow.try_number": str(try_number),
        "mlops.code_version": "0a1b2c3d",
        "mlops.git_sha": "0a1b2c3d",
        "mlops.jobs_version": "0.1.0",
        "mlops.job_image": "registry.example/mlops-jobs:0.1.0",
        "mlops.data_content_hash": HASH,
        **LIBS,
        **({"gpu.count": "1", "gpu.name": "NVIDIA H100"} if gpu else {}),
    }
    return MlflowRecord(
        run_id=RUN_ID,
        experiment_name="train_model_pipeline",
        status="FINISHED",
        params={
            "dataset": "wine",
            "seed": "7",
            "n_estimators": "15",
            "max_depth": "4",
            "label_noise": "0.1",
            "test_size": "0.2",
            "data_content_hash": HASH,
            "n_train": "142",
            "n_test": "36",
        },
        metrics={"accuracy": 0.8055555555555556, "roc_auc": 0.9137308935920047},
        tags=tags,
    )


def gate_failure() -> ProductionRun:
    """Non-default conf; the gate failed on both tries; champion stayed on v2."""
    conf = {"dataset": "wine", "seed": 7, "n_estimators": 15, "max_depth": 4, "label_noise": 0.1,
            "min_accuracy": 0.999}  # fmt: skip
    gate = gate_log()
    return ProductionRun(
        airflow_url=AIRFLOW,
        dag_id="train_model_pipeline",
        dag_run_id="manual__2026-11-27T12:21:46+00:00",
        state="failed",
        conf=conf,
        defaults=dict(DEFAULTS),
        tasks={
            "preprocess_data": TaskRecord("preprocess_data", "success", 1, [TryRecord(1, "success", 14.2)]),
            "train_model": TaskRecord("train_model", "success", 1, [TryRecord(1, "success", 18.3)]),
            "evaluate_and_register": TaskRecord(
                "evaluate_and_register",
                "failed",
                2,
                [TryRecord(1, "failed", 7.6, gate), TryRecord(2, "failed", 4.5, gate)],
            ),
        },
        run_type="manual",
        dag_version="v1",
        mlflow_url=MLFLOW,
        mlflow_runs=[trained()],
        versions=[
            VersionRecord(
                "production-classifier",
                3,
                RUN_ID,
                {
                    "quality_gate": "failed",
                    "quality_gate.metric": "accuracy",
                    "quality_gate.value": "0.8056",
                    "quality_gate.threshold": "0.9990",
                },
            )
        ],
        aliases_now={"champion": 2},
        mlflow_searched="experiment 'train_model_pipeline'",
    )


def transient_retry() -> ProductionRun:
    """train_model lost its node on try 1 and passed on try 2; the gate passed."""
    run = gate_failure()
    run.state = "success"
    run.conf = {"n_estimators": 30, "min_accuracy": 0.9}
    run.tasks["train_model"] = TaskRecord(
        "train_model", "success", 2, [TryRecord(1, "failed", 0.2, NODE_LOST), TryRecord(2, "success", 15.8)]
    )
    run.tasks["evaluate_and_register"] = TaskRecord(
        "evaluate_and_register", "success", 1, [TryRecord(1, "success", 5.2)]
    )
    record = trained(try_number=2)
    record.params.update({"dataset": "breast_cancer", "seed": "42", "n_estimators": "30", "max_depth": "10",
                          "label_noise": "0.0"})  # fmt: skip
    run.mlflow_runs = [record]
    run.versions = [VersionRecord("production-classifier", 4, RUN_ID, {"quality_gate": "passed"})]
    run.aliases_now = {"champion": 4}
    return run


def preprocess_failure() -> ProductionRun:
    """An unknown dataset: preprocess fails (the same way on both tries), nothing trains."""
    log = (
        "[2026-11-27T12:23:53.8Z] INFO mlops_jobs preprocess: configuration error: unknown dataset "
        "'imagenet'; valid datasets: breast_cancer, digits, iris, wine\n"
        "AirflowException: -m mlops_jobs preprocess exited with 2: mlops_jobs preprocess: configuration "
        "error: unknown dataset 'imagenet'; valid datasets: breast_cancer, digits, iris, wine"
    )
    run = gate_failure()
    run.conf = {"dataset": "imagenet"}
    run.tasks = {
        "preprocess_data": TaskRecord(
            "preprocess_data",
            "failed",
            2,
            [TryRecord(1, "failed", 3.0, log), TryRecord(2, "failed", 3.1, log)],
        ),
        "train_model": TaskRecord("train_model", "upstream_failed", 0),
        "evaluate_and_register": TaskRecord("evaluate_and_register", "upstream_failed", 0),
    }
    run.mlflow_runs, run.versions, run.aliases_now = [], [], {}
    return run
