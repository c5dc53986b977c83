"""train_model_pipeline: preprocess_data >> train_model >> evaluate_and_register, daily at 02:00.

Each step runs the job image's ``python -m mlops_jobs <step>``: as a ``KubernetesPodOperator`` in
production, or as a local subprocess when the deployment sets ``MLOPS_TASK_RUNTIME=local`` (Airflow
without Kubernetes). Deployment config is read at parse time (docs/architecture.md).

``dataset`` is a free string rather than a Param enum on purpose: the job validates it, so an unknown
name fails ``preprocess_data`` with the list of valid datasets in the task log (a scenario checks
that), where an enum would reject the trigger before any task ran.

``data_content_hash`` and ``data_source`` make a run reproducible byte for byte: a run given a hash
fails in ``preprocess_data`` (and ``train_model``) when its split hashes to anything else, and a run
given a source trains on that saved split instead of regenerating one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param, chain
from mlops_pipeline.build import build_task
from mlops_pipeline.steps import Deployment, pipeline_steps

DAG_ID = "train_model_pipeline"
DEPLOYMENT = Deployment.from_env()

PARAMS = {
    "experiment_name": Param("train_model_pipeline", type="string", minLength=1),
    "model_name": Param("production-classifier", type="string", minLength=1),
    "min_accuracy": Param(0.85, type="number", minimum=0, maximum=1, description="quality gate on accuracy"),
    "n_estimators": Param(100, type="integer", minimum=1, maximum=5000),
    "max_depth": Param(10, type="integer", minimum=1, maximum=1000),
    "dataset": Param(
        "breast_cancer",
        type="string",
        minLength=1,
        description="a scikit-learn bundled dataset: breast_cancer, iris, wine, digits (the job checks)",
    ),
    "label_noise": Param(0.0, type="number", minimum=0, maximum=0.5, description="share of labels flipped"),
    "seed": Param(42, type="integer", minimum=0),
    "test_size": Param(0.2, type="number", exclusiveMinimum=0, maximum=0.5),
    # Reproducibility: pin the exact bytes a run trains on (both checked by preprocess and train).
    "data_content_hash": Param(
        "",
        type="string",
        pattern=r"^(sha256:[0-9a-f]{64})?$",
        description="the split must hash to this (a manifest's content_hash); empty: not checked",
    ),
    "data_source": Param(
        "",
        type="string",
        pattern=r"^(s3://[^/]+/.*)?$",
        description="s3://bucket/prefix/ holding train.csv and test.csv to use as they are; "
        "empty: generate the split from the dataset",
    ),
}

with DAG(
    dag_id=DAG_ID,
    description="Train, register and gate the production classifier",
    schedule="0 2 * * *",  # Airflow 3: `schedule`; the recipe's `schedule_interval` no longer exists
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=DEPLOYMENT.max_active_runs,
    default_args={
        "owner": "mlops",
        "retries": 1,
        "retry_delay": timedelta(seconds=DEPLOYMENT.retry_delay_seconds),
    },
    params=PARAMS,
    tags=["mlops", "training"],
    doc_md=__doc__,
) as dag:
    chain(*(build_task(step, DEPLOYMENT) for step in pipeline_steps(DEPLOYMENT)))
