"""kind's `up` returns ready for work, as the local backend's does: before it returns it makes the
api-server build its execution API (Cadwyn builds the routes on the first request to /execution/, seconds
with the api-server blocked, which would otherwise be the first task's start call).

No cluster can exist here: docker, kind and helm are left out (an empty plan), and a local HTTP server
stands in for the Airflow NodePort, recording what it is asked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from sandbox.backends.kind import backend as kind_backend
from sandbox.backends.kind import cluster, preflight
from sandbox.backends.kind.backend import KindBackend
from sandbox.errors import ServiceError
from sandbox.ports import free_ports


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path))


@pytest.fixture
def airflow_port() -> Iterator[tuple[int, list[str]]]:
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200 if self.path == "/execution/health/ping" else 404)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], asked
    finally:
        server.shutdown()


def _no_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    tool = SimpleNamespace(path=Path("/nonexistent/tool"))
    tools = SimpleNamespace(docker=tool, helm=tool, kubectl=tool, kind=tool)
    monkeypatch.setattr(preflight, "tools", lambda need_kind=True: tools)
    monkeypatch.setattr(preflight, "docker_daemon", lambda docker: None)
    monkeypatch.setattr(cluster, "exists", lambda kind, name: True)
    monkeypatch.setattr(kind_backend, "plan", lambda *args, **kwargs: [])


def test_up_asks_the_execution_api_before_it_returns(
    monkeypatch: pytest.MonkeyPatch, airflow_port: tuple[int, list[str]]
) -> None:
    port, asked = airflow_port
    _no_tools(monkeypatch)
    events: list[tuple[str, str, str]] = []
    backend = KindBackend("dev", host_ports={"airflow": port}, progress=lambda *e: events.append(e))
    backend.up()
    assert "/execution/health/ping" in asked
    assert ("ready-for-work", "ready", "the execution API answers") in events


def test_an_execution_api_that_does_not_answer_fails_up_naming_its_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_tools(monkeypatch)
    (port,) = free_ports(1)
    backend = KindBackend("dev", host_ports={"airflow": port})
    with pytest.raises(ServiceError, match=rf"127\.0\.0\.1:{port}/execution/ does not answer"):
        backend.up()
