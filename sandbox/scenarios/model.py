"""The scenario file schema (``apiVersion: mlops-sandbox/v1``), as strict pydantic models.

This module is the single source of the file's rules: the loader validates with these models, and
``scenarios/schema.json`` (for editors and CI) is exported from them. So:

- every model forbids unknown keys (a typo is an error, not a silently ignored expectation);
- types are strict: no ``true`` -> 1, ``"2"`` -> 2 or ``"30"`` -> 30.0;
- an explicit ``null`` is refused for every field (``expect:`` with nothing under it checks nothing);
  null means "absent" only as a value inside ``metrics``, ``params``, ``tags``, ``version_tags`` and
  ``aliases``;
- rules across fields are in ``Scenario.problems()``, and in the JSON schema where JSON Schema can
  say them (``RULES_IN_SCHEMA``); the rest are listed in ``RULES_LOADER_ONLY``.

Checks that need to know the DAG (task ids, params) live in ``loader.py``.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sandbox.scenarios.expectations import Comparison, ComparisonKind, comparison_json_schema
from sandbox.stack import FaultAction, ServiceName

API_VERSION = "mlops-sandbox/v1"
DEFAULT_DAG = "train_model_pipeline"
DEFAULT_TIMEOUT_S = 180.0
MAX_RUNS = 20
# Union branch tags carry this prefix so the loader can drop them from field paths in messages.
TAG_PREFIX = "\u00b7"
# Airflow's rule for DAG and task ids (KEY_REGEX in airflow.utils.helpers: ^[\w.-]+$), in ASCII so
# Python, pydantic and editors' (ECMAScript) regex engines read it the same way.
ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
# Set by the runner per scenario so scenarios never share an experiment or a registered model.
RESERVED_CONF = ("experiment_name", "model_name")
# Validation context key: the loader collects cross-field problems itself (with their field paths).
COLLECT_PROBLEMS = "collect_problems"

Capability = Literal["gpu"]
TaskState = Literal["success", "failed", "upstream_failed", "skipped", "removed", "none"]
FAILING_STATES = ("failed", "upstream_failed")
DagRunState = Literal["success", "failed"]
Loc = tuple[str | int, ...]


def _optional(description: str = "") -> Any:
    """An optional field: absent means "not checked"; the JSON schema offers no null (see ``_not_null``)."""
    return Field(None, description=description or None, json_schema_extra=_drop_null)


def _drop_null(schema: dict[str, Any]) -> None:
    branches = [s for s in schema.pop("anyOf", []) if s.get("type") != "null"]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    schema.pop("default", None)


class Problem(NamedTuple):
    """A rule across fields that a scenario breaks: where, what, and the fix."""

    loc: Loc
    message: str
    fix: str


def _comparison(kind: ComparisonKind, description: str) -> Any:
    return Annotated[
        Comparison,
        PlainValidator(partial(Comparison.parse, kind=kind)),
        PlainSerializer(str, return_type=str),
        WithJsonSchema({**comparison_json_schema(kind), "description": description}, mode="validation"),
    ]


ValueComparison = _comparison(
    "value",
    "Text, a number or a boolean (equality), null (absent), '== x', '!= x', '>= n', '<= n', '> n', "
    "'< n', or an inclusive range 'LOW..HIGH'.",
)
MetricComparison = _comparison(
    "number", "A number (equality), null (absent), an operator and a number ('>= 0.9'), or 'LOW..HIGH'."
)
CountComparison = _comparison(
    "count", "A whole number >= 0, an operator and a whole number ('>= 1'), or a range ('1..3')."
)
Text = Annotated[str, Field(pattern=r"\S")]
Conf = Annotated[
    dict[str, Any], Field(json_schema_extra={"propertyNames": {"not": {"enum": list(RESERVED_CONF)}}})
]
Id = Annotated[str, Field(pattern=ID_PATTERN)]


_OBJECT, _LIST, _SCALAR, _COUNT, _TASK, _SERVICE, _WORD = (
    f"{TAG_PREFIX}{t}" for t in ("object", "list", "scalar", "count", "task", "service", "word")
)


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
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        # Runs only for keys present in the file (defaults are not validated).
        if value is None:
            field = cls.model_fields.get(info.field_name or "")
            key = (field.alias if field else None) or info.field_name or "this field"
            raise ValueError(
                f"'{key}' is empty (null); fix: write its value after '{key}:', or indent what belongs to "
                "it by two more spaces, or delete the line (null means 'absent' only inside metrics, "
                "params, tags, version_tags and aliases)"
            )
        return value


class TaskExpect(_Model):
    """A task instance's final state and/or its try number (2 means it needed one retry)."""

    state: TaskState | None = _optional("Final state of the task instance.")
    try_number: CountComparison | None = _optional("Final try number, e.g. 2 or '>= 2'.")

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    @model_validator(mode="after")
    def _says_something(self) -> TaskExpect:
        if self.state is None and self.try_number is None:
            raise ValueError(
                "an empty task expectation checks nothing; fix: give 'state:' and/or 'try_number:'"
            )
        return self


TaskExpectation = Annotated[
    Annotated[TaskState, Tag(_SCALAR)] | Annotated[TaskExpect, Tag(_OBJECT)],
    Discriminator(_object_or_scalar),
]


def _number_or_word(value: Any) -> str:
    """A word (``this_run``, or a typo of it) or a version number (a quoted digit is a number's error)."""
    return _WORD if isinstance(value, str) and not value.strip().isdigit() else _COUNT


# An alias's version: a number, or the version the DAG run registered (concurrent runs: no fixed order).
AliasTarget = Annotated[
    Annotated[Annotated[int, Field(ge=1)], Tag(_COUNT)] | Annotated[Literal["this_run"], Tag(_WORD)],
    Discriminator(_number_or_word),
]


class RegistryExpect(_Model):
    """The scenario's registered model after the run (versions count over the scenario's runs)."""

    versions: CountComparison | None = _optional("Number of versions, e.g. 2 or '>= 1'.")
    aliases: dict[str, AliasTarget | None] = Field(
        default_factory=dict,
        description="Alias -> version number, 'this_run' (the version this DAG run registered: concurrent "
        "runs register in no fixed order), or null for 'alias not set'.",
    )
    version_tags: dict[str, ValueComparison] = Field(
        default_factory=dict, description="Tags of the version this run registered."
    )


class ArtifactsExpect(_Model):
    """Where this DAG run's artifacts went: the tracking server's proxy and the artifact bucket."""

    proxied: bool | None = _optional(
        "true: every MLflow run's artifact_uri and the registered model's location are served "
        "by the tracking server's proxy (mlflow-artifacts:/...); false: none of them is.",
    )
    model_files: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Files of the version this run registered that must be in the artifact bucket, relative "
        "to the model's artifact location (e.g. MLmodel).",
    )


class MlflowExpect(_Model):
    """The MLflow runs this DAG run logged (found by their Airflow dag_run_id tag)."""

    runs: CountComparison | None = _optional("How many MLflow runs this DAG run logged.")
    metrics: dict[str, MetricComparison] = Field(default_factory=dict)
    params: dict[str, ValueComparison] = Field(default_factory=dict)
    tags: dict[str, ValueComparison] = Field(default_factory=dict)
    registry: RegistryExpect | None = _optional()
    artifacts: ArtifactsExpect | None = _optional()


class S3Expect(_Model):
    """Objects under ``s3://<data bucket>/runs/<dag_run_id>/``."""

    objects: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="Keys relative to runs/<dag_run_id>/ that must exist."
    )
    count: CountComparison | None = _optional("Number of objects, e.g. 0 or '>= 3'.")


LogTexts = Annotated[
    Annotated[Text, Tag(_SCALAR)] | Annotated[list[Text], Field(min_length=1), Tag(_LIST)],
    Discriminator(_list_or_scalar),
]

# dag_run: success while a task is expected to fail (as a state, or as {state: ...}).
_FAILING = {"enum": list(FAILING_STATES)}
_SUCCESS_WITH_FAILING_TASK = {
    "if": {"required": ["dag_run"], "properties": {"dag_run": {"const": "success"}}},
    "then": {
        "properties": {
            "tasks": {
                "additionalProperties": {
                    "not": {
                        "anyOf": [
                            _FAILING,
                            {"type": "object", "required": ["state"], "properties": {"state": _FAILING}},
                        ]
                    }
                }
            }
        }
    },
}


class Expect(_Model):
    """What one DAG run must have produced. Only what is written is checked."""

    dag_run: DagRunState | None = _optional("Final state of the DAG run.")
    tasks: dict[Id, TaskExpectation] = Field(
        default_factory=dict, description="Task id -> final state, or {state, try_number}."
    )
    mlflow: MlflowExpect | None = _optional()
    s3: S3Expect | None = _optional()
    log_contains: dict[Id, LogTexts] = Field(
        default_factory=dict, description="Task id -> text (or list of texts) its log must contain."
    )
    overlapping_tries: CountComparison | None = _optional(
        "Pairs of tries of one task whose recorded run times overlap (a task ran twice at once), e.g. 0."
    )

    model_config = ConfigDict(json_schema_extra=_SUCCESS_WITH_FAILING_TASK)

    def task_expectations(self) -> dict[str, TaskExpect]:
        return {k: v if isinstance(v, TaskExpect) else TaskExpect(state=v) for k, v in self.tasks.items()}

    def problems(self, loc: Loc, versions_at_most: int) -> list[Problem]:
        """Contradictions inside one run's expectations; ``versions_at_most`` is how many model
        versions the scenario's runs up to this one can have registered (one per DAG run)."""
        out: list[Problem] = []
        failing = [t for t, e in self.task_expectations().items() if e.state in FAILING_STATES]
        if self.dag_run == "success" and failing:
            out.append(
                Problem(
                    (*loc, "dag_run"),
                    f"expects success while task(s) {', '.join(failing)} are expected to fail",
                    "expect 'dag_run: failed' or fix the task states",
                )
            )
        registry = self.mlflow.registry if self.mlflow else None
        if registry is None:
            return out
        runs = f"{versions_at_most} DAG run(s)"
        at_least = 0
        for alias, version in registry.aliases.items():
            if not isinstance(version, int):
                continue
            if version > versions_at_most:
                out.append(
                    Problem(
                        (*loc, "mlflow", "registry", "aliases", alias),
                        f"version {version} cannot exist: {runs} register at most {versions_at_most} "
                        "version(s) (one per DAG run)",
                        f"use a version from 1 to {versions_at_most}, or add runs",
                    )
                )
            else:
                at_least = max(at_least, version)
        versions = registry.versions
        possible = range(at_least, versions_at_most + 1)
        if versions is not None and not any(versions.matches(n) for n in possible):
            why = f"{runs} register at most {versions_at_most} version(s) (one per DAG run)"
            if at_least:
                why += f", and an alias on version {at_least} needs at least {at_least}"
            out.append(
                Problem(
                    (*loc, "mlflow", "registry", "versions"),
                    f"'{versions}' can never hold: {why}",
                    f"expect a count from {at_least} to {versions_at_most}",
                )
            )
        return out


class Fault(_Model):
    """Fail a task's given tries before its job starts (``injected fault: <message>``)."""

    task: Id = Field(description="Task id to fail.")
    tries: list[Annotated[int, Field(ge=1)]] = Field(default=[1], min_length=1, description="Tries to fail.")
    message: Text = Field("transient failure injected by the scenario")


PointEvent = Literal["start", "end", "registered"]
RUN_START = "run_start"
MAX_FAULT_SECONDS = 3600.0


class TaskPoint(_Model):
    """A moment of one task try: it starts (before its job runs), it ends (any final state of the
    try), or it has registered a model version while its job still runs (``registered``)."""

    task: Id = Field(description="Task id.")
    try_: int = Field(1, alias="try", ge=1, description="Which try of the task (1 = the first).")
    event: PointEvent = Field(
        "start",
        description="start: before the try's job runs; end: the try reached a final state (success, "
        "failed, up_for_retry); registered: the try registered a model version, its job not finished.",
    )
    delay: float = Field(0.0, ge=0, le=MAX_FAULT_SECONDS, description="Seconds after the event.")

    def label(self) -> str:
        text = f"{self.task} try {self.try_} {self.event}"
        return f"{text} +{self.delay:g}s" if self.delay else text


Point = Annotated[
    Annotated[Literal["run_start"], Tag(_SCALAR)] | Annotated[TaskPoint, Tag(_OBJECT)],
    Discriminator(_object_or_scalar),
]


def point_label(point: str | TaskPoint) -> str:
    return point if isinstance(point, str) else point.label()


class Restore(_Model):
    """When a service fault is undone: ``after`` seconds, or ``at`` a point; exactly one of them."""

    after: float | None = Field(
        None, gt=0, le=MAX_FAULT_SECONDS, description="Seconds after the fault was injected.",
        json_schema_extra=_drop_null,
    )  # fmt: skip
    at: TaskPoint | None = _optional("A point of the DAG run (a task try's start, end or registration).")

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    @model_validator(mode="after")
    def _one(self) -> Restore:
        if (self.after is None) == (self.at is None):
            raise ValueError(
                "give exactly one of 'after' (seconds) and 'at' (a point); fix: e.g. 'restore: {after: 10}', "
                "or leave 'restore' out to undo the fault when the DAG run ends"
            )
        if self.at is not None and self.at.event == "registered":
            raise ValueError(
                "a fault cannot be undone at a 'registered' point (that point holds the MLflow run it "
                "waits for); fix: restore at the try's 'end', or 'after' some seconds"
            )
        return self


class ServiceFault(_Model):
    """Stop, kill, pause or cut off a platform service at a point of the DAG run, and undo it later."""

    service: ServiceName = Field(description="The platform service (as `sandbox status` names it).")
    action: FaultAction = Field(
        description="stop: orderly shutdown; kill: SIGKILL; pause: SIGSTOP (connections hang); "
        "unavailable: connections refused, data kept."
    )
    at: Point = Field(
        description="'run_start' (before the DAG run is triggered: between runs) or a task try's point."
    )
    restore: Restore | None = _optional("When to undo it (default: when the DAG run ends).")

    def label(self) -> str:
        return f"{self.service} {self.action}"


def _task_or_service(value: Any) -> str:
    return _SERVICE if isinstance(value, dict | ServiceFault) and (
        isinstance(value, ServiceFault) or "service" in value
    ) else _TASK


AnyFault = Annotated[
    Annotated[Fault, Tag(_TASK)] | Annotated[ServiceFault, Tag(_SERVICE)],
    Discriminator(_task_or_service),
]


def task_faults(faults: list[Any]) -> list[Fault]:
    return [f for f in faults if isinstance(f, Fault)]


def service_faults(faults: list[Any]) -> list[ServiceFault]:
    return [f for f in faults if isinstance(f, ServiceFault)]


class RunSpec(_Model):
    """One DAG run of a multi-run scenario."""

    name: Text | None = _optional("Label shown in reports, e.g. 'retrain'.")
    conf: Conf = Field(default_factory=dict, description="DAG params, merged over the scenario's.")
    faults: list[AnyFault] = Field(default_factory=list, description="Task faults and service faults.")
    expect: Expect = Field(default_factory=Expect)

    @property
    def task_faults(self) -> list[Fault]:
        return task_faults(self.faults)

    @property
    def service_faults(self) -> list[ServiceFault]:
        return service_faults(self.faults)


RunsField = Annotated[
    Annotated[list[RunSpec], Field(min_length=1, max_length=MAX_RUNS), Tag(_LIST)]
    | Annotated[Annotated[int, Field(ge=1, le=MAX_RUNS)], Tag(_COUNT)],
    Discriminator(_list_or_count),
]

# With a list of runs, expectations and faults belong to each run.
_RUNS_LIST_EXCLUDES_TOP_LEVEL = {
    "if": {"required": ["runs"], "properties": {"runs": {"type": "array"}}},
    "then": {"allOf": [{"not": {"required": ["expect"]}}, {"not": {"required": ["faults"]}}]},
}
# Service faults disturb every scenario on the stack: the scenario must have it to itself.
_HAS_SERVICE_FAULT = {"type": "array", "contains": {"type": "object", "required": ["service"]}}
_ANY_SERVICE_FAULT = {
        "anyOf": [
            {"required": ["faults"], "properties": {"faults": _HAS_SERVICE_FAULT}},
            {
                "required": ["runs"],
                "properties": {
                    "runs": {
                        "type": "array",
                        "contains": {
                            "type": "object",
                            "required": ["faults"],
                            "properties": {"faults": _HAS_SERVICE_FAULT},
                        },
                    }
                },
            },
        ]
}  # fmt: skip
_SERVICE_FAULTS_NEED_EXCLUSIVE = {
    "if": _ANY_SERVICE_FAULT,
    "then": {"required": ["exclusive"], "properties": {"exclusive": {"const": True}}},
}
# Concurrent runs: two or more, and no service fault (its points belong to one run's timeline).
_CONCURRENT_RUNS = {
    "if": {"required": ["concurrent"], "properties": {"concurrent": {"const": True}}},
    "then": {
        "required": ["runs"],
        "properties": {
            "runs": {"anyOf": [{"type": "array", "minItems": 2}, {"type": "integer", "minimum": 2}]}
        },
        "not": _ANY_SERVICE_FAULT,
    },
}
# A run the scheduler makes from the DAG's schedule: the scenario has the stack to itself (the scheduler
# restarts), one run, no conf (a scheduled run has the DAG's defaults) and no faults (armed by run id).
_SCHEDULE_TRIGGER = {
    "if": {"required": ["trigger"], "properties": {"trigger": {"const": "schedule"}}},
    "then": {
        "required": ["exclusive"],
        "properties": {
            "exclusive": {"const": True}, "runs": {"const": 1},
            "conf": {"maxProperties": 0}, "faults": {"maxItems": 0},
        },
    },
}  # fmt: skip
# Rules beyond each field's type (Scenario.problems() and model validators): those the exported JSON
# schema states too, and those only the loader checks (the corpus test names them).
RULES_IN_SCHEMA = {
    "reserved-conf": "experiment_name / model_name in a conf (the runner sets them per scenario)",
    "runs-list-with-top-level": "top-level expect/faults next to a list of runs",
    "success-with-failing-task": "dag_run: success while a task is expected to fail",
    "empty-task-expectation": "a task expectation with neither state nor try_number",
    "service-faults-need-exclusive": "service faults in a scenario that is not 'exclusive: true'",
    "restore-one-of": "a restore with both or neither of 'after' and 'at'",
    "concurrent-runs": "'concurrent: true' with fewer than 2 runs, or with service faults",
    "schedule-trigger": "'trigger: schedule' without 'exclusive: true', or with more than one run, a conf "
    "or faults",
}
RULES_LOADER_ONLY = {
    "restore-at-registered": "a restore at a 'registered' point (that point holds the MLflow run it awaits)",
    "registry-beyond-runs": "an alias on, or a version count above, what the scenario's runs can register "
    "(JSON Schema cannot compare a number with the length of another field)",
}


class Scenario(_Model):
    """A scenario: DAG runs triggered with a conf, and what the platform must record."""

    api_version: Literal["mlops-sandbox/v1"] = Field(alias="apiVersion", description="Schema version.")
    name: Text = Field(description="Human name, shown in reports.")
    description: str = ""
    dag: Id = Field(DEFAULT_DAG, description="DAG id to trigger.")
    requires: list[Capability] = Field(
        default_factory=list, description="Capabilities needed; skipped with a reason where missing."
    )
    timeout: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=3600, description="Deadline per DAG run, seconds.")
    conf: Conf = Field(default_factory=dict, description="DAG params for every run.")
    faults: list[AnyFault] = Field(
        default_factory=list, description="Task and service faults for every run (single-run form)."
    )
    expect: Expect | None = _optional("Expectations of the last run (single-run form).")
    exclusive: bool = Field(
        False,
        description="Never run concurrently with another scenario (required with service faults: they "
        "disturb every scenario on the stack).",
    )
    concurrent: bool = Field(
        False,
        description="Trigger every run at once and wait for all of them (production's overlapping runs "
        "into one experiment and one model); expectations are checked once all have ended. Needs 2 or "
        "more runs and the DAG's max_active_runs at least that (the sandbox deployment raises it).",
    )
    trigger: Literal["api", "schedule"] = Field(
        "api",
        description="api: the runner triggers each run with the scenario's conf. schedule: the scheduler "
        "makes the run from the DAG's own schedule, as in production (the sandbox keeps schedules off "
        "otherwise): it is restarted with them on for this scenario and off after it. One run, the DAG's "
        "default params (so MLflow expectations see its default experiment and model), no conf, no "
        "faults, and 'exclusive: true'.",
    )
    runs: RunsField = Field(
        1,
        description=f"Number of identical runs (1 to {MAX_RUNS}), or a list of 1 to {MAX_RUNS} runs "
        "with their own expect.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                _RUNS_LIST_EXCLUDES_TOP_LEVEL,
                _SERVICE_FAULTS_NEED_EXCLUSIVE,
                _CONCURRENT_RUNS,
                _SCHEDULE_TRIGGER,
            ]
        }
    )

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Scenario:
        if info.context and info.context.get(COLLECT_PROBLEMS):
            return self  # the loader reports them itself, each at its field
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(f"{'.'.join(map(str, p.loc))}: {p.message}" for p in problems))
        return self

    def problems(self) -> list[Problem]:
        """Every rule across fields this scenario breaks (see RULES_*)."""
        out: list[Problem] = []
        confs = [(("conf",), self.conf)]
        if isinstance(self.runs, list):
            confs += [(("runs", i, "conf"), run.conf) for i, run in enumerate(self.runs)]
        for loc, conf in confs:
            out += [
                Problem(
                    (*loc, key),
                    "set per scenario by the runner (isolation)",
                    f"remove '{key}'; each scenario gets its own experiment and registered model",
                )
                for key in conf
                if key in RESERVED_CONF
            ]
        if self.all_service_faults() and not self.exclusive:
            out.append(
                Problem(
                    ("exclusive",) if "exclusive" in self.model_fields_set else (),
                    "service faults disturb every scenario running on the stack, so this scenario needs "
                    "it to itself",
                    "add 'exclusive: true' at the top level",
                )
            )
        if self.concurrent:
            count = len(self.runs) if isinstance(self.runs, list) else self.runs
            if count < 2:
                out.append(
                    Problem(
                        ("runs",) if "runs" in self.model_fields_set else ("concurrent",),
                        f"'concurrent: true' needs at least 2 runs to overlap, this scenario has {count}",
                        "add runs (a list of 2 or more, or 'runs: 2'), or remove 'concurrent'",
                    )
                )
            if self.all_service_faults():
                out.append(
                    Problem(
                        ("concurrent",),
                        "service faults cannot be combined with concurrent runs (a fault's points follow "
                        "one run's tasks)",
                        "remove 'concurrent', or move the service faults into a scenario of their own",
                    )
                )
        if self.trigger == "schedule":
            out += self._schedule_problems()
        if isinstance(self.runs, list):
            for key in ("expect", "faults"):
                if key in self.model_fields_set:
                    out.append(
                        Problem(
                            (key,),
                            f"top-level '{key}' cannot be combined with a list of runs",
                            f"move it into each entry of 'runs' (runs[i].{key})",
                        )
                    )
            for i, run in enumerate(self.runs):
                # Concurrent runs register in no fixed order: any of them may see every version.
                at_most = len(self.runs) if self.concurrent else i + 1
                out += run.expect.problems(("runs", i, "expect"), at_most)
        elif self.expect is not None:
            out += self.expect.problems(("expect",), self.runs)
        return out

    def _schedule_problems(self) -> list[Problem]:
        at = ("trigger",)
        out: list[Problem] = []
        if not self.exclusive:
            out.append(Problem(
                ("exclusive",) if "exclusive" in self.model_fields_set else at,
                "'trigger: schedule' restarts the scheduler (twice), which ends the tasks of any other "
                "scenario on the stack, so this scenario needs it to itself",
                "add 'exclusive: true' at the top level",
            ))
        if self.runs != 1:
            out.append(Problem(
                ("runs",), "'trigger: schedule' takes the one run the schedule makes (catchup is the "
                "DAG's: production's makes the latest interval's run only)",
                "remove 'runs', or use 'trigger: api' for several runs",
            ))
        if self.conf:
            out.append(Problem(
                ("conf",), "a scheduled run has no conf: it runs with the DAG's default params",
                "remove 'conf' (change the DAG's defaults to test others), or use 'trigger: api'",
            ))
        if self.faults:
            out.append(Problem(
                ("faults",), "faults are armed for a run the runner names, and the scheduler names this one",
                "remove 'faults', or use 'trigger: api'",
            ))
        return out

    def all_service_faults(self) -> list[ServiceFault]:
        """Every service fault of the scenario, over all its runs."""
        if isinstance(self.runs, list):
            return [f for run in self.runs for f in run.service_faults]
        return service_faults(self.faults)

    def all_task_faults(self) -> list[Fault]:
        if isinstance(self.runs, list):
            return [f for run in self.runs for f in run.task_faults]
        return task_faults(self.faults)

    def plan(self) -> list[RunSpec]:
        """The DAG runs to make, in order, each with its merged conf and expectations."""
        if isinstance(self.runs, list):
            return [r.model_copy(update={"conf": {**self.conf, **r.conf}}) for r in self.runs]
        empty = Expect()
        return [
            RunSpec(
                conf=dict(self.conf),
                faults=list(self.faults),
                # Concurrent runs all end together: each is held to the expectations.
                expect=(self.expect or empty) if self.concurrent or i == self.runs - 1 else empty,
            )
            for i in range(self.runs)
        ]


def json_schema() -> dict[str, Any]:
    """The JSON schema editors use (``# yaml-language-server: $schema=schema.json``)."""
    schema = Scenario.model_json_schema(by_alias=True)
    schema = _key_patterns_as_property_names(json.loads(json.dumps(schema).replace(TAG_PREFIX, "")))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mlops-sandbox.dev/schemas/scenario-v1.json",
        "title": "mlops-sandbox scenario (apiVersion mlops-sandbox/v1)",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def _key_patterns_as_property_names(node: Any) -> Any:
    """pydantic states constrained dict keys as ``patternProperties``, which lets any other key
    through unchecked; ``propertyNames`` rejects them, as the model does."""
    if isinstance(node, list):
        return [_key_patterns_as_property_names(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _key_patterns_as_property_names(v) for k, v in node.items()}
    patterns = out.get("patternProperties")
    if isinstance(patterns, dict) and len(patterns) == 1 and "properties" not in out:
        ((pattern, values),) = patterns.items()
        del out["patternProperties"]
        out["propertyNames"] = {"pattern": pattern}
        out["additionalProperties"] = values
    return out


def render_json_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
