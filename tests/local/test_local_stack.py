"""The local backend against real services: Postgres, S3 (moto), MLflow, Airflow."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from sandbox.backends.local.backend import SERVICES, LocalBackend
from sandbox.backends.local.process import find
from sandbox.ports import port_in_use
from sandbox.stack import Backend, get_backend

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _token(backend: LocalBackend) -> str:
    creds = backend.credentials
    body = json.dumps({"username": creds.airflow_username, "password": creds.airflow_password}).encode()
    request = urllib.request.Request(
        f"{backend.endpoints.airflow_url}/auth/token", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())["access_token"]


def _get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def _s3(backend: LocalBackend):
    import boto3

    creds, ep = backend.credentials, backend.endpoints
    return boto3.client(
        "s3",
        endpoint_url=ep.s3_url,
        aws_access_key_id=creds.s3_access_key,
        aws_secret_access_key=creds.s3_secret_key,
        region_name="us-east-1",
    )


def _tree_pids(backend: LocalBackend) -> set[int]:
    model = backend.state.load()
    assert model is not None
    pids: set[int] = set()
    for record in model.services.values():
        proc = find(record)
        if proc is not None:
            pids.add(proc.pid)
            pids.update(child.pid for child in proc.children(recursive=True))
    return pids


def test_stack_is_healthy_and_reused(stack: LocalBackend) -> None:
    """A second ``up`` reuses the healthy stack: same processes (how fast: benchmarks/bench_local_up.py)."""
    assert isinstance(stack, Backend)
    assert [s.name for s in stack.status()] == list(SERVICES)
    assert all(s.healthy for s in stack.status()), stack.status()
    before = {s.name: s.pid for s in stack.status()}
    result = stack.up()
    assert result.reused
    assert {s.name: s.pid for s in stack.status()} == before
    ep = stack.endpoints
    for url in (ep.airflow_url, ep.mlflow_url, ep.s3_url):
        assert url.startswith("http://127.0.0.1:")
    assert "faults" in stack.capabilities()


def test_secrets_file_is_private_and_never_in_state_or_argv(stack: LocalBackend) -> None:
    secrets_file = stack.endpoints.credentials_file
    assert secrets_file is not None
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    state_text = stack.state.state_file.read_text()
    creds = stack.credentials
    cmdlines = " ".join(" ".join(psutil.Process(pid).cmdline()) for pid in _tree_pids(stack))
    for value in creds.secrets():
        assert value not in state_text
        assert value not in cmdlines  # command lines are world-readable through ps


def test_services_listen_on_loopback_only(stack: LocalBackend) -> None:
    model = stack.state.load()
    assert model is not None
    ports = set(model.ports.values())
    listening = [
        c
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports
    ]
    assert listening, "no listener found on the sandbox's ports"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


def test_postgres_accepts_a_query(stack: LocalBackend) -> None:
    import psycopg2  # in the platform lock the test envs install
    ep, creds = stack.endpoints, stack.credentials
    for database in ("airflow", "mlflow"):
        conn = psycopg2.connect(
            host=ep.postgres_host,
            port=ep.postgres_port,
            user=creds.postgres_user,
            password=creds.postgres_password,
            dbname=database,
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_database(), 6 * 7")
                assert cur.fetchone() == (database, 42)
        finally:
            conn.close()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(
            host=ep.postgres_host,
            port=ep.postgres_port,
            user=creds.postgres_user,
            password="wrong",
            dbname="airflow",
        )


def test_s3_put_and_get(stack: LocalBackend) -> None:
    s3 = _s3(stack)
    bucket = stack.endpoints.data_bucket
    key = f"tests/{uuid.uuid4().hex}.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"hello sandbox")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"hello sandbox"
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {stack.endpoints.data_bucket, stack.endpoints.artifacts_bucket} <= names


def test_mlflow_artifact_lands_in_s3(stack: LocalBackend, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.endpoints.mlflow_url)
    experiment_id = client.create_experiment(f"local-backend-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "accuracy", 0.93)
    artifact = tmp_path / "note.txt"
    artifact.write_text("stored through the MLflow artifact proxy")
    client.log_artifact(run.info.run_id, str(artifact))
    client.set_terminated(run.info.run_id)

    assert client.get_run(run.info.run_id).data.metrics["accuracy"] == pytest.approx(0.93)
    listed = _s3(stack).list_objects_v2(Bucket=stack.endpoints.artifacts_bucket)
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/note.txt") for k in keys), keys


def test_airflow_lists_the_pipeline_dag_without_import_errors(stack: LocalBackend) -> None:
    token = _token(stack)
    base = stack.endpoints.airflow_url
    deadline = time.monotonic() + 120
    dag_ids: list[str] = []
    while time.monotonic() < deadline:
        dag_ids = [d["dag_id"] for d in _get(f"{base}/api/v2/dags", token)["dags"]]
        errors = _get(f"{base}/api/v2/importErrors", token)
        assert errors["total_entries"] == 0, errors["import_errors"]
        if "train_model_pipeline" in dag_ids:
            break
        time.sleep(2)
    assert "train_model_pipeline" in dag_ids


def test_airflow_rejects_a_wrong_password(stack: LocalBackend) -> None:
    body = json.dumps({"username": stack.credentials.airflow_username, "password": "not-it"}).encode()
    request = urllib.request.Request(
        f"{stack.endpoints.airflow_url}/auth/token", data=body, headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 401


def test_diagnostics_bundle_has_logs_without_secrets(stack: LocalBackend, tmp_path: Path) -> None:
    bundle = stack.diagnostics(tmp_path)
    logs = {p.name for p in (bundle / "services").iterdir()}
    assert {"postgres.log", "mlflow.log", "airflow-scheduler.log", "s3.log"} <= logs
    text = "\n".join(p.read_text() for p in bundle.rglob("*") if p.is_file())
    for value in stack.credentials.secrets():
        assert value not in text


def test_killed_harness_is_reaped_and_second_sandbox_runs_side_by_side(
    stack: LocalBackend, state_root: Path
) -> None:
    """A harness killed with -9 mid-`up` leaves processes behind; the next `up` reaps them and
    starts, next to the session's stack; `down` then leaves no process and frees every port."""
    name = f"t{os.getpid()}-b"
    script = (
        "import sys; from sandbox.backends.local.backend import LocalBackend; "
        f"LocalBackend({name!r}, state_root=sys.argv[1]).up()"
    )
    harness = subprocess.Popen([sys.executable, "-c", script, str(state_root)])
    second = LocalBackend(name, state_root=state_root)
    deadline = time.monotonic() + 120
    model = None
    while time.monotonic() < deadline:  # kill it once the services of phase 2 are recorded
        model = second.state.load() if second.state.state_file.exists() else None
        if model is not None and "mlflow" in model.services:
            break
        assert harness.poll() is None, "the harness exited before it could be killed"
        time.sleep(0.2)
    assert model is not None and "mlflow" in model.services
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    orphans = [find(r) for r in model.services.values()]
    assert any(p is not None for p in orphans), "nothing was left running to reap"

    try:
        result = second.up()
        assert not result.reused
        assert all(s.healthy for s in second.status())
        for proc in orphans:
            assert proc is None or not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
        # Side by side: both healthy, no shared port.
        assert all(s.healthy for s in stack.status())
        ports_a = set(stack.state.load().ports.values())
        ports_b = set(second.state.load().ports.values())
        assert not ports_a & ports_b
        pids = _tree_pids(second)
        assert len(pids) >= len(SERVICES)
    finally:
        second.down()

    _, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=5)
    assert not alive, f"still running after down: {alive}"
    assert not any(port_in_use(p) for p in ports_b)
    assert all(not s.healthy for s in second.status())
    assert all(s.healthy for s in stack.status()), "down of one sandbox touched the other"
    second.down(purge=True)
    assert not second.state.dir.exists()


def test_get_backend_returns_local_backend(state_root: Path) -> None:
    backend = get_backend("local", "some-name", state_root=state_root)
    assert isinstance(backend, LocalBackend)
    assert backend.sandbox_name == "some-name"
