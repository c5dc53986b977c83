"""Reports: secrets never reach a file, the Markdown summary lists every scenario and its failure."""

from __future__ import annotations

from pathlib import Path

from sandbox.report import STACK_ROW, redact, stack_row, summary_row, write_markdown
from sandbox.scenarios.model import Scenario
from sandbox.scenarios.observations import (
    MlflowRunObservation,
    ModelVersionObservation,
    RegistryObservation,
    RunObservation,
)
from sandbox.scenarios.runner import RunResult, ScenarioResult


def test_redact_masks_every_secret_but_not_short_values() -> None:
    text = "password=hunter2hunter2 key=abc token=s3cr3t-s3cr3t"
    assert redact(text, ["hunter2hunter2", "s3cr3t-s3cr3t", "abc"]) == "password=*** key=abc token=***"


def _result() -> ScenarioResult:
    sc = Scenario.model_validate({"apiVersion": "mlops-sandbox/v1", "name": "x", "runs": 2})
    plan = sc.plan()
    reg = RegistryObservation(
        "m", True, [ModelVersionObservation(1, "r1"), ModelVersionObservation(2, "r2")], {"champion": 2}
    )
    runs = [
        RunResult(
            i,
            plan[i],
            RunObservation(
                "d",
                f"run{i}",
                "success",
                registry=reg,
                mlflow_runs=[MlflowRunObservation("r", "FINISHED", {"accuracy": 0.9512})],
            ),
        )
        for i in range(2)
    ]
    return ScenarioResult(sc, None, "sbx-x-abc123", "sbx-x-abc123", runs, 12.3)


def test_summary_row_shows_states_metrics_and_registry() -> None:
    row = summary_row("x", _result(), "passed", 12.34)
    assert row == {
        "scenario": "x",
        "verdict": "passed",
        "dag": "success -> success",
        "metrics": "accuracy 0.951",
        "registry": "2 version(s), champion=v2",
        "wall": "12.3s",
    }


def test_markdown_report_lists_rows_and_failures_redacted(tmp_path: Path) -> None:
    rows = [summary_row("x", _result(), "passed", 1.0), summary_row("y", None, "failed", 2.0)]
    details = [
        ("y", "expect.dag_run: expected success, got 'failed' (password TopSecretValue)", tmp_path / "b")
    ]
    path = write_markdown(
        rows,
        details,
        backend="local",
        sandbox_name="t",
        total_wall=3.0,
        secrets=["TopSecretValue"],
        dest=tmp_path,
    )
    text = path.read_text()
    assert (tmp_path / "latest.md").read_text() == text
    assert "| x | passed | success -> success | accuracy 0.951 | 2 version(s), champion=v2 | 1.0s |" in text
    assert "| y | failed | - | - | - | 2.0s |" in text
    assert "## y" in text and "expected success, got 'failed'" in text
    assert f"Diagnostics: `{tmp_path / 'b'}`" in text
    assert "TopSecretValue" not in text and "***" in text
    assert "1 failed, 1 passed" in text


def test_the_stack_start_has_its_own_row_outside_the_scenario_counts(tmp_path: Path) -> None:
    rows = [stack_row("local", "t", "started", 31.96), summary_row("x", _result(), "passed", 1.0)]
    path = write_markdown(rows, [], backend="local", sandbox_name="t", total_wall=33.0, dest=tmp_path)
    text = path.read_text()
    assert f"| {STACK_ROW} | started | local backend, sandbox t | - | - | 32.0s |" in text
    assert "1 passed; 33.0s in all." in text  # the stack is not a scenario
