"""Shared fixtures for the scenario tests: a small DAG folder shaped like the production DAG."""

from __future__ import annotations

from pathlib import Path

import pytest

# Shaped like the production DAG: params in a module-level dict, task ids in step descriptions
# of a helper module. The registry parses it with Airflow, so it must import.
DAG_SOURCE = """
from airflow.sdk import DAG, Param, chain
from helpers.steps import STEPS, build

DAG_ID = "train_model_pipeline"
PARAMS = {
    "experiment_name": Param("default", type="string", minLength=1),
    "model_name": Param("default", type="string", minLength=1),
    "min_accuracy": Param(0.8, type="number", minimum=0, maximum=1),
    "n_estimators": Param(50, type="integer", minimum=1),
    "max_depth": Param(None, type=["null", "integer"]),
    "dataset": Param("iris", type="string"),
    "label_noise": Param(0.0, type="number", minimum=0, maximum=0.5),
    "seed": Param(42, type="integer", minimum=0),
    "test_size": Param(0.25, type="number", exclusiveMinimum=0, maximum=0.5),
}

with DAG(dag_id=DAG_ID, schedule="0 2 * * *", params=PARAMS):
    chain(*(build(step) for step in STEPS))
"""

STEPS_SOURCE = """
from dataclasses import dataclass

from airflow.providers.standard.operators.empty import EmptyOperator


@dataclass(frozen=True)
class Step:
    task_id: str
    job: str


STEPS = [
    Step("preprocess_data", "preprocess"),
    Step("train_model", "train"),
    Step("evaluate_and_register", "evaluate"),
]


def build(step):
    return EmptyOperator(task_id=step.task_id)
"""


@pytest.fixture
def dags_dir(tmp_path: Path) -> Path:
    d = tmp_path / "dags"
    (d / "helpers").mkdir(parents=True)
    (d / "train_model_pipeline.py").write_text(DAG_SOURCE)
    (d / "helpers" / "__init__.py").write_text("")
    (d / "helpers" / "steps.py").write_text(STEPS_SOURCE)
    return d
