"""The local backend against real services: Postgres, S3 (moto), MLflow, Airflow."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from sandbox.backends.local.backend import SERVICES, LocalBackend
from sandbox.backends.local.process import find
from sandbox.clients.airflow import AirflowClient
from sandbox.errors import ServiceError
from sandbox.ports import port_in_use
from sandbox.scenarios import schedule
from sandbox.stack import USE_JOB_SCHEDULE_ENV, Backend, get_backend

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _airflow(backend: LocalBackend, password: str | None = None) -> AirflowClient:
    creds = backend.credentials
    return AirflowClient(
        backend.endpoints.airflow_url, creds.airflow_username, password or creds.airflow_password
    )


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


def _cmdline(pid: int) -> list[str]:
    """A live process's argv; [] for one that exited (or is a zombie) since the tree was listed."""
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def test_up_returns_ready_for_work(stack: LocalBackend) -> None:
    """First in this module, so it runs right after ``up``: the DAG is already registered (no wait, no
    import error) and the scheduler heartbeats, so a trigger now starts work at once."""
    client = _airflow(stack)
    assert client.get_dag("train_model_pipeline") is not None
    assert client.import_errors() == []
    assert {s.name: s.healthy for s in stack.status()}["airflow-scheduler"]
    # The task execution API builds its routes on its first request (about 5 s, the api-server blocked):
    # up has made one, so no task's first call waits for it (that call timed out and was retried, the
    # first task starting ~7 s after it was queued). In the api-server's access log, the first request
    # to the execution API comes before the first DAG run is created, whoever used the stack since.
    log = stack.state.log_file("airflow-api-server").read_text().splitlines()
    execution = [i for i, line in enumerate(log) if "path=/execution/" in line and "status_code=200" in line]
    triggers = [i for i, line in enumerate(log) if "POST path=/api/v2/dags/" in line and "/dagRuns" in line]
    first_trigger = min(triggers, default=len(log))
    assert execution and execution[0] < first_trigger, "the execution API was first built by a task"


SLOW_DAG = """
import time
from datetime import datetime

from airflow.sdk import DAG, task

time.sleep(15)  # a DAG file that takes long to import: up must wait for its parse anyway

with DAG("slow_to_parse", schedule=None, start_date=datetime(2026, 1, 1)):

    @task
    def noop() -> None:
        pass

    noop()
"""


def test_up_waits_for_the_first_parse_of_a_slow_dag_file(state_root: Path, tmp_path: Path) -> None:
    """The dag-processor heartbeats (healthy) long before a slow file is parsed; ``up`` still returns
    only once the DAG is served, so a trigger right after it does not wait for a parse."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "slow_to_parse.py").write_text(SLOW_DAG)
    backend = LocalBackend(f"t{os.getpid()}-slow", state_root=state_root, dags_folder=dags)
    try:
        backend.up()
        client = _airflow(backend)
        assert client.import_errors() == []
        assert client.get_dag("slow_to_parse") is not None
    finally:
        backend.down(purge=True)


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
    cmdlines = " ".join(" ".join(_cmdline(pid)) for pid in _tree_pids(stack))
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

    creds = stack.credentials
    assert stack.postgres_address is not None
    host, port = stack.postgres_address
    for database in ("airflow", "mlflow"):
        conn = psycopg2.connect(
            host=host,
            port=port,
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
            host=host,
            port=port,
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
    client = _airflow(stack)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert client.import_errors() == []
        if client.get_dag("train_model_pipeline") is not None:
            break
        time.sleep(2)
    assert client.get_dag("train_model_pipeline") is not None
    tasks = client.task_ids("train_model_pipeline")  # the API lists them by id
    assert sorted(tasks) == ["evaluate_and_register", "preprocess_data", "train_model"]


def test_the_scheduler_creates_no_run_of_its_own(stack: LocalBackend) -> None:
    """Unpausing the daily DAG (catchup=False) and triggering a run leaves exactly that run: with the
    production ``[scheduler] use_job_schedule`` the scheduler adds the latest interval's run at once."""
    client, dag = _airflow(stack), "train_model_pipeline"
    deadline = time.monotonic() + 120
    while client.get_dag(dag) is None and time.monotonic() < deadline:
        time.sleep(1)
    before = set(client.dag_run_ids(dag))
    client.unpause(dag)
    triggered = f"manual__only-this-{uuid.uuid4().hex[:8]}"
    client.trigger(dag, triggered, {"experiment_name": triggered, "model_name": triggered})
    try:
        # The scheduler creates a due run in its next loop (a second or two here); give it several.
        end = time.monotonic() + 20
        while time.monotonic() < end:
            assert set(client.dag_run_ids(dag)) - before == {triggered}
            time.sleep(1)
    finally:
        client.mark_dag_run_failed(dag, triggered)  # no run left working for the next tests


def _scheduler_env(stack: LocalBackend) -> dict[str, str]:
    main = find(stack.state.load().services["airflow-scheduler"])
    assert main is not None, "the scheduler is not running"
    return main.environ()


def test_schedules_on_make_the_latest_interval_run_and_up_turns_them_off_after_an_interrupt(
    stack: LocalBackend,
) -> None:
    """What a `trigger: schedule` scenario relies on, step by step on the real scheduler: schedules on
    make the latest interval's run; a harness that died with schedules on leaves `up` to restart the
    scheduler without them; rewinding (with schedules off, as the runner does) deletes the run and makes
    its interval due again, and with schedules off the due interval then gets no run."""
    client, dag = _airflow(stack), "train_model_pipeline"
    deadline = time.monotonic() + 120
    while client.get_dag(dag) is None and time.monotonic() < deadline:
        time.sleep(1)
    client.unpause(dag)
    before = schedule.scheduled_runs(client, dag)
    # The overlay's value (the local backend passes the chart's `config:` as AIRFLOW__ variables).
    assert _scheduler_env(stack)[USE_JOB_SCHEDULE_ENV] == "False"

    stack.set_schedules(True)
    assert _scheduler_env(stack)[USE_JOB_SCHEDULE_ENV] == "True"
    made = schedule.await_new_run(client, dag, before, time.monotonic() + 60, lambda: None)
    client.mark_dag_run_failed(dag, made)  # its tasks are not the point here

    # The harness "dies" here, schedules still on: the next `up` turns them off.
    assert stack.state.load().schedules
    stack.up()
    assert not stack.state.load().schedules
    assert _scheduler_env(stack)[USE_JOB_SCHEDULE_ENV] == "False"

    # Rewound while schedules are on, the scheduler would make the run again at once (a race the
    # runner never has: it rewinds before it turns them on).
    events: list[str] = []
    due = schedule.rewind(client, dag, events.append)
    assert made not in schedule.scheduled_runs(client, dag)
    assert due.next_run_after is not None and due.next_run_after <= datetime.now(UTC)
    assert events and made in events[0]
    end = time.monotonic() + 15  # with schedules on the scheduler makes a due run within a loop or two
    while time.monotonic() < end:
        assert schedule.scheduled_runs(client, dag) == before
        time.sleep(1)


def test_airflow_rejects_a_wrong_password(stack: LocalBackend) -> None:
    with pytest.raises(ServiceError, match="401"):
        _airflow(stack, password="not-it").login()


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


def test_a_failing_scenarios_reports_and_bundles_show_no_generated_secret(
    stack: LocalBackend, state_root: Path, tmp_path: Path
) -> None:
    """A scenario whose task log carries a secret (the unknown-dataset error echoes its conf) and a
    service log that carries every secret: the scenario fails through the pytest plugin, and no file
    under the reports folder (Markdown, JUnit, the diagnostics bundle with service and task logs) nor
    the terminal output shows any generated secret in the clear."""
    from sandbox.secrets import REDACTED_KEYS

    values = stack.secrets.read_secrets()
    secrets = [values[k] for k in REDACTED_KEYS]
    with open(stack.state.log_file("mlflow"), "a") as log:
        log.writelines(f"a careless service logged {k}={values[k]}\n" for k in REDACTED_KEYS)
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "leak.yaml").write_text(
        "apiVersion: mlops-sandbox/v1\nname: a secret in the conf\n"
        f"conf: {{dataset: {values['AIRFLOW_PASSWORD']!r}}}\nexpect: {{dag_run: success}}\n"
    )
    argv = [sys.executable, "-m", "pytest", str(scenarios), "-p", "sandbox.pytest_plugin",
            "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "--sandbox-name", stack.sandbox_name,
            f"--junitxml={state_root / 'reports' / 'junit-leak.xml'}"]  # fmt: skip
    env = {**os.environ, "MLOPS_SANDBOX_HOME": str(state_root)}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert "task preprocess_data failed unexpectedly" in output and "unknown dataset" in output
    files = [p for p in (state_root / "reports").rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.log" for p in files), "the bundle has the service logs"
    assert any(p.suffix == ".md" for p in files) and any(p.name == "try-1.log" for p in files)
    # The job ran warm: the stack's job server forked it (sandbox/platform/warm_jobs.py).
    assert any("job forked by the warm job server" in p.read_text() for p in files if p.name == "try-1.log")
    for text, where in [(output, "terminal"), *((p.read_text(errors="replace"), str(p)) for p in files)]:
        for value in secrets:
            assert value not in text, where
    assert "unknown dataset '***'" in output
    # The stack start is its own JUnit test case and summary row (reused here: the session's stack).
    cases = ET.parse(state_root / "reports" / "junit-leak.xml").getroot().iter("testcase")
    stack_case = {c.get("name"): c for c in cases}["stack"]
    props = {p.get("name"): p.get("value") for p in stack_case.iter("property")}
    assert props["reused"] == "true" and float(props["up_seconds"]) >= 0
    markdown = (state_root / "reports" / "latest.md").read_text()
    assert "| (stack start) | reused | local backend, sandbox " in markdown
