"""Service faults on real processes: Postgres, S3 (moto) and MLflow of a local sandbox stopped, killed,
paused and cut off through the supervisor, undone, and healed by ``up`` after a harness that died
mid-fault. (Airflow is left out: the scenarios in ``scenarios/fault_*.yaml`` fault it on a full stack.)"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from sandbox.backends.local.backend import LocalBackend
from sandbox.backends.local.process import find
from sandbox.scenarios.chaos import FaultController, Timeline
from sandbox.scenarios.model import ServiceFault
from sandbox.scenarios.runner import _terminated_raises

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    backend = LocalBackend(
        f"faults-t{os.getpid()}", services=["mlflow"], state_root=tmp_path_factory.mktemp("state")
    )
    try:
        backend.up()
        yield backend
    finally:
        backend.down(purge=True)


def _pid(backend: LocalBackend, service: str) -> int | None:
    model = backend.state.load()
    assert model is not None
    proc = find(model.services[service])
    return proc.pid if proc is not None else None


def _stopped(backend: LocalBackend, service: str) -> list[int]:
    out = []
    for proc in backend.processes(service):
        try:
            if proc.status() == psutil.STATUS_STOPPED:
                out.append(proc.pid)
        except psutil.Error:
            pass
    return out


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except OSError:
        return False


def _healthy(backend: LocalBackend) -> bool:
    return all(s.healthy for s in backend.status())


def _s3(backend: LocalBackend) -> Any:
    import boto3

    creds = backend.credentials
    return boto3.client(
        "s3", endpoint_url=backend.endpoints.s3_url, aws_access_key_id=creds.s3_access_key,
        aws_secret_access_key=creds.s3_secret_key, region_name="us-east-1",
    )  # fmt: skip


def _again(stack: LocalBackend) -> LocalBackend:
    """A second handle on the same sandbox: what the next `sandbox up` after a killed harness sees."""
    return LocalBackend(stack.sandbox_name, services=["mlflow"], state_root=stack.state.dir.parent)


def test_pause_stops_every_process_and_a_later_up_continues_them(stack: LocalBackend) -> None:
    control = stack.service_control("mlflow")
    control.inject("pause")
    try:
        assert _stopped(stack, "mlflow"), "no mlflow process is SIGSTOPped"
        assert not _answers(stack.endpoints.mlflow_url + "/health")
    except BaseException:
        control.restore("pause")
        raise
    # The harness "dies" here: the next up() finds the paused service and continues it, no restart.
    pid = _pid(stack, "mlflow")
    result = _again(stack).up()
    assert result.reused
    assert _stopped(stack, "mlflow") == []
    assert _pid(stack, "mlflow") == pid
    assert _answers(stack.endpoints.mlflow_url + "/health")


def test_a_stopped_service_is_healed_by_up_without_restarting_the_rest(stack: LocalBackend) -> None:
    postgres = _pid(stack, "postgres")
    stack.service_control("mlflow").inject("stop")
    assert _pid(stack, "mlflow") is None
    result = _again(stack).up()
    assert not result.reused
    assert _pid(stack, "mlflow") is not None
    assert _pid(stack, "postgres") == postgres, "up restarted the whole stack instead of healing it"
    assert _healthy(stack)


def test_kill_and_restore_bring_postgres_back_with_its_data(stack: LocalBackend) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stack.endpoints.mlflow_url)
    exp = client.create_experiment(f"kept-{time.time_ns()}")
    # The sandbox's Postgres runs with synchronous_commit=off: the WAL writer flushes commits within
    # wal_writer_delay (200 ms), so a commit younger than that may be lost to a SIGKILL, by design.
    time.sleep(1.0)
    control = stack.service_control("postgres")
    detail = control.inject("kill")
    assert "SIGKILL" in detail
    assert _pid(stack, "postgres") is None
    control.restore("kill")
    assert _pid(stack, "postgres") is not None
    deadline = time.monotonic() + 60
    while True:  # MLflow's connection pool reconnects on its own
        try:
            assert client.get_experiment(exp).experiment_id == exp
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_unavailable_s3_refuses_connections_and_keeps_its_objects(stack: LocalBackend) -> None:
    s3 = _s3(stack)
    bucket = stack.endpoints.data_bucket
    s3.put_object(Bucket=bucket, Key="kept/one.txt", Body=b"one")
    control = stack.service_control("s3")
    control.inject("unavailable")
    assert not _answers(stack.endpoints.s3_url)
    # The harness "dies" here: the next up() starts S3 again and puts the objects back.
    _again(stack).up()
    assert s3.get_object(Bucket=bucket, Key="kept/one.txt")["Body"].read() == b"one"
    # And the ordinary restore does the same.
    control.inject("unavailable")
    assert "object(s) put back" in control.restore("unavailable")
    assert s3.get_object(Bucket=bucket, Key="kept/one.txt")["Body"].read() == b"one"


class _Platform:
    """What the fault controller uses of a platform: the backend (the Airflow and MLflow clients only
    for task points, which a ``run_start`` fault does not have)."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.airflow = self.mlflow = None


def test_a_fault_in_place_is_undone_when_the_run_is_interrupted(stack: LocalBackend) -> None:
    fault = ServiceFault.model_validate({"service": "mlflow", "action": "stop", "at": "run_start"})
    controller = FaultController(
        _Platform(stack), [fault], dag_run_id="r", experiment="e", model="m", timeline=Timeline()
    )
    with pytest.raises(KeyboardInterrupt), _terminated_raises():
        try:
            controller.before_trigger()
            assert _pid(stack, "mlflow") is None
            os.kill(os.getpid(), signal.SIGTERM)  # the harness is told to stop mid-fault
            time.sleep(5)
        finally:
            controller.finish()
    assert _pid(stack, "mlflow") is not None
    assert _answers(stack.endpoints.mlflow_url + "/health")
    (record,) = controller.records
    assert record.injected is not None and record.restored is not None
    assert controller.problems() == []
