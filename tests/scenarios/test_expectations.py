"""Comparisons and expectation checks: every mismatch listed with expected vs actual."""

from __future__ import annotations

import pytest

from sandbox.scenarios.expectations import Comparison, ComparisonError, check
from sandbox.scenarios.model import Expect
from sandbox.scenarios.observations import (
    MlflowRunObservation,
    ModelVersionObservation,
    RegistryObservation,
    RunObservation,
    TaskObservation,
    TaskTry,
)


@pytest.mark.parametrize(
    ("raw", "actual", "ok"),
    [
        (">= 0.9", 0.9, True),
        (">= 0.9", 0.8999, False),
        ("> 0.9", 0.9, False),
        ("< 5", 4, True),
        ("<= 5", "5", True),
        ("== 100", "100", True),
        ("== 100", 100.0, True),
        (100, "100", True),
        ("!= failed", "passed", True),
        ("!= failed", None, True),
        ("0.8..0.95", 0.8, True),
        ("0.8..0.95", 0.95, True),
        ("0.8..0.95", 0.96, False),
        ("passed", "passed", True),
        ("passed", "failed", False),
        (True, "true", True),
        (True, "False", False),
        (None, None, True),
        (None, "x", False),
        (">= 0.9", None, False),
        (">= 0.9", "not a number", False),
        ("== 0.1", 0.1 + 1e-15, True),
        ("1e-3..2e-3", 0.0015, True),
    ],
)
def test_comparison_matches(raw: object, actual: object, ok: bool) -> None:
    assert Comparison.parse(raw).matches(actual) is ok


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (">= abc", ">= needs a number"),
        ("0.95..0.8", "is empty"),
        ("0.8..", "not a range of numbers"),
        ("=> 0.9", "unknown operator"),
        ("==", "no value after"),
        ("", "empty comparison"),
        ([1], "must be a string"),
        (float("nan"), "not a finite number"),
        ("< inf", "needs a number"),
    ],
)
def test_impossible_comparisons_are_errors(raw: object, fragment: str) -> None:
    with pytest.raises(ComparisonError, match="fix: ") as info:
        Comparison.parse(raw)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("raw", "kind", "fragment"),
    [
        ("good", "number", "a metric is a number, got the text 'good'"),
        ("0.9", "number", "got the text '0.9'"),
        ("== good", "number", "== needs a number"),
        (True, "number", "got the boolean true"),
        (None, "count", "null is not a count"),
        (2.0, "count", "a count is a whole number"),
        (-1, "count", "a count is a whole number"),
        ("2", "count", "got the text '2'"),
        (">= 1.5", "count", "needs a whole number"),
        ("1..2.5", "count", "not a range of whole numbers"),
        ("a..b", "value", "not a range of numbers"),
    ],
)
def test_comparisons_of_numbers_and_counts_are_strict(raw: object, kind: str, fragment: str) -> None:
    with pytest.raises(ComparisonError, match="fix: ") as info:
        Comparison.parse(raw, kind=kind)  # type: ignore[arg-type]
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("raw", "kind", "actual", "ok"),
    [
        (0.9, "number", 0.9, True),
        ("!= 0.5", "number", 0.9, True),
        (None, "number", None, True),
        (2, "count", 2, True),
        ("1..3", "count", 4, False),
        ("== passed", "value", "passed", True),
        ("yes", "value", "yes", True),
    ],
)
def test_valid_comparisons_of_each_kind_match(raw: object, kind: str, actual: object, ok: bool) -> None:
    assert Comparison.parse(raw, kind=kind).matches(actual) is ok  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["value", "number", "count"])
@pytest.mark.parametrize(
    "text", ["0.9", ">= 0.9", "== x", "!= 3", "1..2", "=> 1", "", " ", "a..b", "~x", "< 1e3", "2", "== 2"]
)
def test_schema_pattern_agrees_with_the_parser(kind: str, text: str) -> None:
    """The exported JSON schema's pattern for comparison strings accepts exactly what parse() does."""
    import re

    from sandbox.scenarios.expectations import string_pattern

    try:
        Comparison.parse(text, kind=kind)  # type: ignore[arg-type]
        parsed = True
    except ComparisonError:
        parsed = False
    assert bool(re.search(string_pattern(kind), text)) is parsed  # type: ignore[arg-type]


def _obs(**over: object) -> RunObservation:
    train = MlflowRunObservation(
        "r1", "FINISHED", metrics={"accuracy": 0.93}, params={"n_estimators": "50"}, tags={"gpu": "false"}
    )
    base = RunObservation(
        dag_id="train_model_pipeline",
        dag_run_id="d1",
        state="failed",
        tasks={
            "preprocess_data": TaskObservation("preprocess_data", "success", 1),
            "train_model": TaskObservation(
                "train_model", "success", 2, tries=[TaskTry(1, "failed", 0.5), TaskTry(2, "success", 3.0)]
            ),
            "evaluate_and_register": TaskObservation("evaluate_and_register", "failed", 1, duration=1.0),
        },
        mlflow_runs=[train],
        registry=RegistryObservation(
            "m",
            exists=True,
            versions=[
                ModelVersionObservation(1, "r0", {"quality_gate": "passed"}, ["champion"]),
                ModelVersionObservation(2, "r1", {"quality_gate": "failed"}),
            ],
            aliases={"champion": 1},
        ),
        s3_objects=["train.csv", "test.csv", "manifest.json"],
        logs={"evaluate_and_register": "quality gate failed: accuracy 0.9300 is below threshold 0.9990"},
    )
    for k, v in over.items():
        setattr(base, k, v)
    return base


def test_matching_expectations_give_no_mismatch() -> None:
    expect = Expect.model_validate(
        {
            "dag_run": "failed",
            "tasks": {
                "train_model": {"state": "success", "try_number": 2},
                "evaluate_and_register": "failed",
            },
            "mlflow": {
                "runs": 1,
                "metrics": {"accuracy": ">= 0.9"},
                "params": {"n_estimators": 50},
                "tags": {"gpu": False},
                "registry": {
                    "versions": 2,
                    "aliases": {"champion": 1},
                    "version_tags": {"quality_gate": "failed"},
                },
            },
            "s3": {"objects": ["train.csv", "manifest.json"], "count": 3},
            "log_contains": {"evaluate_and_register": ["below threshold", "accuracy"]},
        }
    )
    assert check(expect, _obs()) == []


def test_all_mismatches_are_listed_with_expected_and_actual() -> None:
    expect = Expect.model_validate(
        {
            "dag_run": "success",
            "tasks": {"train_model": {"try_number": 1}, "preprocess_data": "failed"},
            "mlflow": {
                "metrics": {"accuracy": ">= 0.95", "f1": ">= 0.5"},
                "registry": {
                    "versions": 1,
                    "aliases": {"champion": 2},
                    "version_tags": {"quality_gate": "passed"},
                },
            },
            "s3": {"objects": ["model.pkl"]},
            "log_contains": {"evaluate_and_register": "above threshold"},
        }
    )
    got = {m.path: m for m in check(expect, _obs())}
    assert set(got) == {
        "expect.dag_run",
        "expect.tasks.train_model.try_number",
        "expect.tasks.preprocess_data.state",
        "expect.mlflow.metrics.accuracy",
        "expect.mlflow.metrics.f1",
        "expect.mlflow.registry.versions",
        "expect.mlflow.registry.aliases.champion",
        "expect.mlflow.registry.version_tags.quality_gate",
        "expect.s3.objects",
        "expect.log_contains.evaluate_and_register",
    }
    assert str(got["expect.dag_run"]) == "expect.dag_run: expected success, got 'failed'"
    assert got["expect.mlflow.metrics.accuracy"].actual == "0.93"
    assert got["expect.mlflow.metrics.f1"].actual == "nothing (absent)"
    assert got["expect.mlflow.registry.aliases.champion"].actual == "version 1"
    assert got["expect.mlflow.registry.version_tags.quality_gate"].actual == "'failed' (version 2)"
    assert "below threshold" in got["expect.log_contains.evaluate_and_register"].actual


def test_registry_expectations_when_nothing_was_registered() -> None:
    obs = _obs(mlflow_runs=[], registry=RegistryObservation("m"), s3_objects=[])
    expect = Expect.model_validate(
        {
            "mlflow": {"runs": 0, "registry": {"versions": 0, "aliases": {"champion": None}}},
            "s3": {"count": 0},
        }
    )
    assert check(expect, obs) == []
    tags = Expect.model_validate({"mlflow": {"registry": {"version_tags": {"quality_gate": "passed"}}}})
    (m,) = check(tags, obs)
    assert m.actual == "no version registered by this run"


def test_job_seconds_sums_every_try() -> None:
    assert _obs().job_seconds() == pytest.approx(0.5 + 3.0 + 1.0)


def test_an_alias_on_this_run_means_the_version_this_dag_run_registered() -> None:
    """Concurrent runs register in no fixed order: 'this_run' follows the run's own version (v2, from
    MLflow run r1), whatever its number."""
    on_this_run = Expect.model_validate({"mlflow": {"registry": {"aliases": {"champion": "this_run"}}}})
    registry = _obs().registry
    assert registry is not None
    registry.aliases = {"champion": 2}
    assert check(on_this_run, _obs(registry=registry)) == []
    registry.aliases = {"champion": 1}  # the other run's version
    (m,) = check(on_this_run, _obs(registry=registry))
    assert (m.path, m.expected, m.actual) == (
        "expect.mlflow.registry.aliases.champion",
        "the version this run registered (version 2)",
        "version 1",
    )
    (m,) = check(on_this_run, _obs(mlflow_runs=[]))  # registered nothing
    assert m.expected == "the version this run registered (none registered)"
