"""``sandbox reproduce`` end to end on real stacks: one sandbox plays production, a second one replays.

``repro-prod`` runs the DAG as production would: a run with non-default conf that fails the quality
gate, and a passing run whose train_model loses its first try (a fault armed by the harness, as a
lost node). ``sandbox reproduce`` reads each run back through the REST API, MLflow and S3 and writes
a scenario; ``repro-local`` runs it, and must record the same data hash, params, metrics and gate
outcome. Then the errors a user meets. Two stack starts in this module, both stopped at the end.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.backends.local.backend import LocalBackend
from sandbox.ports import LOOPBACK, free_ports
from sandbox.reproduce import data
from sandbox.scenarios import faults as faults_mod
from sandbox.scenarios.loader import load
from sandbox.scenarios.model import Expect, Fault, RunSpec
from sandbox.scenarios.observations import MlflowRunObservation, RegistryObservation
from sandbox.scenarios.runner import Platform, Runner, ScenarioResult

pytestmark = pytest.mark.slow

DAG = "train_model_pipeline"
# Production's own experiment and model (the DAG's defaults), as a real deployment would use them.
EXPERIMENT, MODEL = "train_model_pipeline", "production-classifier"
GATE_CONF = {"dataset": "wine", "seed": 7, "n_estimators": 15, "max_depth": 4, "label_noise": 0.1,
             "min_accuracy": 0.999}  # fmt: skip
RETRY_CONF = {"n_estimators": 30, "min_accuracy": 0.9}


@dataclass
class Production:
    backend: LocalBackend
    platform: Platform
    gate_run: str
    retry_run: str

    def env(self, state_root: Path) -> dict[str, str]:
        """The environment `sandbox reproduce` runs in: production credentials, the sandboxes' state."""
        creds = self.backend.credentials
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_REPRO_", "AWS_", "MLFLOW_"))}
        return {
            **base,
            "MLOPS_SANDBOX_HOME": str(state_root),
            "MLOPS_REPRO_AIRFLOW_USERNAME": creds.airflow_username,
            "MLOPS_REPRO_AIRFLOW_PASSWORD": creds.airflow_password,
            "MLOPS_REPRO_S3_ACCESS_KEY_ID": creds.s3_access_key,
            "MLOPS_REPRO_S3_SECRET_ACCESS_KEY": creds.s3_secret_key,
        }

    def secrets(self) -> list[str]:
        return self.backend.credentials.secrets()

    def args(self, dag_run_id: str, *extra: str) -> list[str]:
        ep = self.backend.endpoints
        return ["reproduce", "--airflow-url", ep.airflow_url, "--mlflow-url", ep.mlflow_url,
                "--s3-url", ep.s3_url, "--dag-run-id", dag_run_id, *extra]  # fmt: skip

    def mlflow_run(self, dag_run_id: str) -> MlflowRunObservation:
        (trained,) = [
            r for r in self.platform.mlflow.runs_of(EXPERIMENT, dag_run_id) if r.status == "FINISHED"
        ]
        return trained


@pytest.fixture(scope="module")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandboxes")


def _play(runner: Runner, platform: Platform, dag_run_id: str, conf: dict, faults: list[Fault]) -> str:
    with faults_mod.armed(platform.airflow, dag_run_id, faults):
        spec = RunSpec(conf=conf, faults=faults)
        return runner.trigger_and_wait(DAG, dag_run_id, conf, spec, Expect(), 600, fail_fast=False)


@pytest.fixture(scope="module")
def production(state_root: Path) -> Iterator[Production]:
    backend = LocalBackend("repro-prod", state_root=state_root)
    try:
        backend.up()
        platform = Platform(backend)
        runner = Runner(platform)
        runner.ensure_dag(DAG, time.monotonic() + 180)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        retry_run, gate_run = f"manual__{stamp}.retry", f"manual__{stamp}.gate"
        lost_node = [Fault(task="train_model", tries=[1], message="node lost")]
        assert _play(runner, platform, retry_run, RETRY_CONF, lost_node) == "success"
        assert _play(runner, platform, gate_run, GATE_CONF, []) == "failed"
        yield Production(backend, platform, gate_run, retry_run)
    finally:
        backend.down(purge=True)


@pytest.fixture(scope="module")
def local(state_root: Path, production: Production) -> Iterator[Platform]:
    backend = LocalBackend("repro-local", state_root=state_root)
    try:
        backend.up()
        platform = Platform(backend)
        Runner(platform).ensure_dag(DAG, time.monotonic() + 180)
        yield platform
    finally:
        backend.down(purge=True)


def _reproduce(production: Production, state_root: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    """`sandbox reproduce` as a user runs it (a separate process, credentials in its environment)."""
    return subprocess.run(
        [sys.executable, "-m", "sandbox.cli", *args],
        env=production.env(state_root),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _replay(local: Platform, path: Path) -> ScenarioResult:
    loaded = load(path)
    result = Runner(local).run(loaded.scenario, loaded.path)
    assert result.passed, f"{path.read_text()}\n{result.failure_text()}"
    return result


def _same_training(prod: MlflowRunObservation, replay: MlflowRunObservation) -> None:
    assert replay.params == prod.params  # dataset, seed, n_estimators, ..., data_content_hash, n_train
    assert set(replay.metrics) == set(prod.metrics)
    for name, value in prod.metrics.items():
        assert math.isclose(replay.metrics[name], value, rel_tol=1e-9), name
    for tag in (
        "mlops.data_content_hash",
        "mlops.jobs_version",
        "mlops.lib.scikit-learn",
        "airflow.try_number",
    ):
        assert replay.tags[tag] == prod.tags[tag], tag


def _gate(registry: RegistryObservation | None) -> list[str | None]:
    return [v.tags.get("quality_gate") for v in (registry.versions if registry else [])]


def _no_secrets(production: Production, *texts: str) -> None:
    for secret in production.secrets():
        for text in texts:
            assert secret not in text


@dataclass
class Reproduced:
    output: Path
    proc: subprocess.CompletedProcess[str]
    started: float


@pytest.fixture(scope="module")
def gate_copied(
    production: Production, local: Platform, state_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Reproduced:
    """`sandbox reproduce --copy-data` of the failed-gate run into repro-local."""
    output = tmp_path_factory.mktemp("repro") / "scenarios" / "repro" / "gate.yaml"
    started = time.monotonic()
    proc = _reproduce(production, state_root, production.args(
        production.gate_run, "--copy-data", "--name", "repro-local", "-o", str(output)
    ))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Reproduced(output, proc, started)


def test_a_failing_gate_replays_on_another_sandbox_with_the_copied_data(
    production: Production, local: Platform, gate_copied: Reproduced
) -> None:
    output, proc = gate_copied.output, gate_copied.proc
    text = output.read_text()
    _no_secrets(production, proc.stdout, proc.stderr, text)
    assert "= production's data_content_hash" in proc.stdout

    result = _replay(local, output)
    print(f"\nreproduce -> passing replay: {time.monotonic() - gate_copied.started:.1f}s")
    (run,) = result.runs
    obs, prod = run.observation, production.mlflow_run(production.gate_run)
    assert obs.state == "failed" and obs.tasks["evaluate_and_register"].state == "failed"
    (replayed,) = obs.mlflow_runs
    _same_training(prod, replayed)
    assert replayed.tags["mlops.data_source"].startswith("s3://mlops-data/reproductions/manual__")
    assert _gate(obs.registry) == ["failed"] and obs.registry is not None and obs.registry.aliases == {}
    prod_registry = production.platform.mlflow.registry(MODEL)
    (prod_version,) = [v for v in prod_registry.versions if v.run_id == prod.run_id]
    assert obs.registry.versions[0].tags == prod_version.tags  # gate metric, value and threshold


def test_a_retried_run_replays_by_regenerating_its_data_and_failing_the_same_try(
    production: Production, local: Platform, state_root: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scenarios" / "repro" / "retry.yaml"
    credentials = tmp_path / "prod.env"
    env = production.env(state_root)
    credentials.write_text(
        "".join(f"{k}={v}\n" for k, v in env.items() if k.startswith("MLOPS_REPRO_AIRFLOW"))
    )
    credentials.chmod(0o600)
    args = production.args(production.retry_run, "--credentials", str(credentials), "-o", str(output))
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", *args],
        env={k: v for k, v in env.items() if not k.startswith("MLOPS_REPRO_")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = output.read_text()
    _no_secrets(production, proc.stdout, proc.stderr, text)
    loaded = load(output).scenario
    assert [(f.task, f.tries) for f in loaded.faults] == [("train_model", [1])]
    assert "data_source" not in loaded.conf and loaded.conf["data_content_hash"].startswith("sha256:")

    (run,) = _replay(local, output).runs
    obs, prod = run.observation, production.mlflow_run(production.retry_run)
    assert obs.state == "success" and obs.tasks["train_model"].try_number == 2
    (replayed,) = obs.mlflow_runs
    _same_training(prod, replayed)
    assert replayed.tags["mlops.data_source"].startswith("generated")
    assert _gate(obs.registry) == ["passed"] and obs.registry is not None
    assert obs.registry.aliases == {"champion": 1}


def test_a_replay_on_other_bytes_stops_in_preprocess(local: Platform, gate_copied: Reproduced) -> None:
    """The guard behind "the same data": a copy that changed under the scenario is refused, not used."""
    output = gate_copied.output
    source = load(output).scenario.conf["data_source"]
    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    creds = local.backend.credentials
    s3 = data.s3_client(local.endpoints.s3_url, creds.s3_access_key, creds.s3_secret_key, "us-east-1")
    # Another split, with a manifest that describes it correctly: only the pinned hash can tell.
    files = {n: s3.get_object(Bucket=bucket, Key=prefix + n)["Body"].read() for n in data.SPLIT_FILES}
    files["test.csv"] = files["test.csv"].replace(b"\n1", b"\n2", 1)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + data.MANIFEST)["Body"].read())
    manifest["files"]["test.csv"]["sha256"] = hashlib.sha256(files["test.csv"]).hexdigest()
    manifest["content_hash"] = data.content_hash(files)
    other = f"s3://{bucket}/reproductions/other-bytes/"
    for name, body in {**files, data.MANIFEST: json.dumps(manifest).encode()}.items():
        s3.put_object(Bucket=bucket, Key=f"reproductions/other-bytes/{name}", Body=body)

    tampered = output.with_name("other-bytes.yaml")
    tampered.write_text(output.read_text().replace(source, other))
    loaded = load(tampered)
    result = Runner(local).run(loaded.scenario, loaded.path)
    assert not result.passed
    assert result.aborted is not None, result.failure_text()
    assert "task preprocess_data failed unexpectedly" in result.aborted.reason
    assert "data content hash mismatch: the split read from " + other in result.aborted.detail
    assert not result.runs or not result.runs[0].observation.mlflow_runs


# --- the errors a user meets ------------------------------------------------------------------


@pytest.fixture
def fails(
    production: Production,
    state_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., str]:
    """Run `sandbox reproduce` in this process (the libraries are imported already); expect exit 2."""
    from sandbox.cli import main

    def run(args: list[str], **env: str) -> str:
        for name in [n for n in os.environ if n.startswith("MLOPS_REPRO_")]:
            monkeypatch.delenv(name)  # each call gets only its own credentials
        for name, value in {**production.env(state_root), **env}.items():
            monkeypatch.setenv(name, value)
        assert main(args) == 2
        out = capsys.readouterr()
        _no_secrets(production, out.out, out.err)
        for value in env.values():
            assert value not in out.out + out.err
        return " ".join((out.out + out.err).split())  # rich wraps lines: compare on words

    return run


def test_an_unknown_run_id_lists_the_latest_runs(production: Production, fails: Callable[..., str]) -> None:
    out = fails(production.args("manual__no-such-run"))
    assert (
        f"DAG '{DAG}' at {production.backend.endpoints.airflow_url} has no run 'manual__no-such-run'" in out
    )
    assert production.gate_run in out  # among "the latest runs"
    out = fails(production.args(production.gate_run, "--dag-id", "train_modle"))
    assert "has no DAG 'train_modle'" in out and f"Pass --dag-id with one of: {DAG}" in out


def test_unauthorised_and_unreachable_endpoints_are_named(
    production: Production, fails: Callable[..., str]
) -> None:
    wrong = "wrong-password-123"
    out = fails(production.args(production.gate_run), MLOPS_REPRO_AIRFLOW_PASSWORD=wrong)
    airflow = production.backend.endpoints.airflow_url
    assert f"Production Airflow at {airflow} refused the username and password (HTTP 401" in out
    out = fails(production.args(production.gate_run), MLOPS_REPRO_AIRFLOW_TOKEN="expired-token-value")
    # Airflow 3.3 answers 403 to a token it cannot verify.
    assert f"Production Airflow at {airflow} refused to let these credentials read DAG '{DAG}'" in out
    assert "(HTTP 403: Invalid JWT token)" in out and "MLOPS_REPRO_AIRFLOW_TOKEN is expired" in out

    dead = f"http://{LOOPBACK}:{free_ports(1)[0]}"
    args = production.args(production.gate_run)
    args[args.index("--airflow-url") + 1] = dead
    out = fails(args)
    assert f"Production Airflow at {dead} is unreachable" in out and "--airflow-url" in out

    args = production.args(production.gate_run)
    args[args.index("--mlflow-url") + 1] = dead
    out = fails(args)
    assert f"Production MLflow at {dead} is unreachable" in out


def test_a_dag_run_whose_mlflow_run_is_elsewhere_says_how_they_are_linked(
    production: Production, local: Platform, fails: Callable[..., str]
) -> None:
    """--mlflow-url pointing at another tracking server (here: the second sandbox's)."""
    args = production.args(production.gate_run)
    args[args.index("--mlflow-url") + 1] = local.endpoints.mlflow_url
    out = fails(args)
    assert f"has no run tagged airflow.dag_id='{DAG}' and airflow.dag_run_id='{production.gate_run}'" in out
    assert "tags every MLflow run with airflow.dag_id, airflow.dag_run_id and airflow.task_id" in out


def test_data_that_cannot_be_copied_is_named(production: Production, fails: Callable[..., str]) -> None:
    args = production.args(
        production.gate_run, "--data-from", "s3://mlops-data/nowhere/", "--name", "repro-local"
    )
    out = fails(args)
    assert "s3://mlops-data/nowhere/train.csv does not exist on production S3" in out
    # The split of another run is not the data this run trained on.
    args = production.args(
        production.gate_run,
        "--data-from",
        f"s3://mlops-data/runs/{production.retry_run}/",
        "--name",
        "repro-local",
    )
    out = fails(args)
    assert "it is not the data that run trained on" in out
