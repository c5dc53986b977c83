"""The scenario file schema (``apiVersion: mlops-sandbox/v1``), as pydantic models.

Every model forbids unknown keys so a typo is an error, not a silently ignored expectation.
Checks that need to know the DAG (task ids, params) live in ``loader.py``; this module is the
shape of the file and is exported as ``scenarios/schema.json`` for editors.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
)

from sandbox.scenarios.expectations import Comparison

API_VERSION = "mlops-sandbox/v1"
DEFAULT_DAG = "train_model_pipeline"
DEFAULT_TIMEOUT_S = 180.0
KNOWN_CAPABILITIES = ("gpu",)
# Union branch tags carry this prefix so the loader can drop them from field paths in messages.
TAG_PREFIX = "\u00b7"

Capability = Literal["gpu"]
TaskState = Literal["success", "failed", "upstream_failed", "skipped", "removed", "none"]
DagRunState = Literal["success", "failed"]

ComparisonValue = Annotated[
    Comparison,
    PlainValidator(Comparison.parse, json_schema_input_type=str | float | int | bool | None),
    PlainSerializer(str, return_type=str),
    Field(
        description="A plain value (equality), null (absent), '== x', '!= x', '>= n', '<= n', '> n', "
        "'< n', or an inclusive range 'LOW..HIGH'."
    ),
]


_OBJECT, _LIST, _SCALAR, _COUNT = (f"{TAG_PREFIX}{t}" for t in ("object", "list", "scalar", "count"))


# Discriminators pick a union's branch from the YAML value's shape, so a validation error reports
# the branch the user meant instead of one error per branch.
def _object_or_scalar(value: Any) -> str:
    # A model instance (when serializing) is the object branch too.
    return _OBJECT if isinstance(value, dict | BaseModel) else _SCALAR


def _list_or_scalar(value: Any) -> str:
    return _LIST if isinstance(value, list) else _SCALAR


def _list_or_count(value: Any) -> str:
    return _LIST if isinstance(value, list) else _COUNT


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskExpect(_Model):
    """A task instance's final state and/or its try number (2 means it needed one retry)."""

    state: TaskState | None = Field(None, description="Final state of the task instance.")
    try_number: ComparisonValue | None = Field(None, description="Final try number, e.g. 2 or '>= 2'.")


TaskExpectation = Annotated[
    Annotated[TaskState, Tag(_SCALAR)] | Annotated[TaskExpect, Tag(_OBJECT)],
    Discriminator(_object_or_scalar),
]


class RegistryExpect(_Model):
    """The scenario's registered model after the run."""

    versions: ComparisonValue | None = Field(None, description="Number of versions, e.g. 2 or '>= 1'.")
    aliases: dict[str, Annotated[int, Field(ge=1)] | None] = Field(
        default_factory=dict, description="Alias -> version number, or null for 'alias not set'."
    )
    version_tags: dict[str, ComparisonValue] = Field(
        default_factory=dict, description="Tags of the version this run registered."
    )


class ArtifactsExpect(_Model):
    """Where this DAG run's artifacts went: the tracking server's proxy and the artifact bucket."""

    proxied: bool | None = Field(
        None,
        description="true: every MLflow run's artifact_uri and the registered model's location are served "
        "by the tracking server's proxy (mlflow-artifacts:/...); false: none of them is.",
    )
    model_files: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Files of the version this run registered that must be in the artifact bucket, relative "
        "to the model's artifact location (e.g. MLmodel).",
    )


class MlflowExpect(_Model):
    """The MLflow runs this DAG run logged (found by their Airflow dag_run_id tag)."""

    runs: ComparisonValue | None = Field(None, description="How many MLflow runs this DAG run logged.")
    metrics: dict[str, ComparisonValue] = Field(default_factory=dict)
    params: dict[str, ComparisonValue] = Field(default_factory=dict)
    tags: dict[str, ComparisonValue] = Field(default_factory=dict)
    registry: RegistryExpect | None = None
    artifacts: ArtifactsExpect | None = None


class S3Expect(_Model):
    """Objects under ``s3://<data bucket>/runs/<dag_run_id>/``."""

    objects: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="Keys relative to runs/<dag_run_id>/ that must exist."
    )
    count: ComparisonValue | None = Field(None, description="Number of objects, e.g. 0 or '>= 3'.")


LogTexts = Annotated[
    Annotated[str, Tag(_SCALAR)] | Annotated[list[str], Tag(_LIST)],
    Discriminator(_list_or_scalar),
]


class Expect(_Model):
    """What one DAG run must have produced. Only what is written is checked."""

    dag_run: DagRunState | None = Field(None, description="Final state of the DAG run.")
    tasks: dict[str, TaskExpectation] = Field(
        default_factory=dict, description="Task id -> final state, or {state, try_number}."
    )
    mlflow: MlflowExpect | None = None
    s3: S3Expect | None = None
    log_contains: dict[str, LogTexts] = Field(
        default_factory=dict, description="Task id -> text (or list of texts) its log must contain."
    )

    def task_expectations(self) -> dict[str, TaskExpect]:
        return {k: v if isinstance(v, TaskExpect) else TaskExpect(state=v) for k, v in self.tasks.items()}


class Fault(_Model):
    """Fail a task's given tries before its job starts (``injected fault: <message>``)."""

    task: str = Field(description="Task id to fail.")
    tries: list[Annotated[int, Field(ge=1)]] = Field(default=[1], min_length=1, description="Tries to fail.")
    message: str = Field("transient failure injected by the scenario", min_length=1)


class RunSpec(_Model):
    """One DAG run of a multi-run scenario."""

    name: str | None = Field(None, description="Label shown in reports, e.g. 'retrain'.")
    conf: dict[str, Any] = Field(default_factory=dict, description="DAG params, merged over the scenario's.")
    faults: list[Fault] = Field(default_factory=list)
    expect: Expect = Field(default_factory=Expect)


RunsField = Annotated[
    Annotated[list[RunSpec], Tag(_LIST)] | Annotated[Annotated[int, Field(ge=1, le=20)], Tag(_COUNT)],
    Discriminator(_list_or_count),
]


class Scenario(_Model):
    """A scenario: DAG runs triggered with a conf, and what the platform must record."""

    api_version: Literal["mlops-sandbox/v1"] = Field(alias="apiVersion", description="Schema version.")
    name: str = Field(min_length=1, description="Human name, shown in reports.")
    description: str = ""
    dag: str = Field(DEFAULT_DAG, description="DAG id to trigger.")
    requires: list[Capability] = Field(
        default_factory=list, description="Capabilities needed; skipped with a reason where missing."
    )
    timeout: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=3600, description="Deadline per DAG run, seconds.")
    conf: dict[str, Any] = Field(default_factory=dict, description="DAG params for every run.")
    faults: list[Fault] = Field(default_factory=list, description="Faults for every run (single-run form).")
    expect: Expect | None = Field(None, description="Expectations of the last run (single-run form).")
    runs: RunsField = Field(
        1, description="Number of identical runs, or a list of runs with their own expect."
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def plan(self) -> list[RunSpec]:
        """The DAG runs to make, in order, each with its merged conf and expectations."""
        if isinstance(self.runs, list):
            return [r.model_copy(update={"conf": {**self.conf, **r.conf}}) for r in self.runs]
        empty = Expect()
        return [
            RunSpec(
                conf=dict(self.conf),
                faults=list(self.faults),
                expect=(self.expect or empty) if i == self.runs - 1 else empty,
            )
            for i in range(self.runs)
        ]


def json_schema() -> dict[str, Any]:
    """The JSON schema editors use (``# yaml-language-server: $schema=schema.json``)."""
    schema = Scenario.model_json_schema(by_alias=True)
    schema = json.loads(json.dumps(schema).replace(TAG_PREFIX, ""))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mlops-sandbox.dev/schemas/scenario-v1.json",
        "title": "mlops-sandbox scenario (apiVersion mlops-sandbox/v1)",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def render_json_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
