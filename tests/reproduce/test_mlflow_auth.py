"""Production MLflow refusing the credentials.

MLflow's basic-auth app needs Flask-WTF, which the platform lock does not include, so a stand-in HTTP
server answers the probe the way that app does (401 without valid credentials, 403 without
permission). Reachability and the search itself are covered against real MLflow servers in
test_reproduce_live.py.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox.errors import ConfigError
from sandbox.reproduce.access import Production, load_credentials
from sandbox.reproduce.source import MlflowReader

USER, PASSWORD = "reader", "mlflow-Pa55word"


class _AuthApp(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        got = self.headers.get("Authorization")
        if got is None or (got.startswith("Basic ") and got != expected):
            self._answer(
                401, b"You are not authenticated. Please see the MLflow docs on how to authenticate."
            )
        elif got.startswith("Bearer "):
            self._answer(403, b"Permission denied")
        else:
            self._answer(200, b'{"experiments": []}')

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return None


@pytest.fixture(scope="module")
def mlflow_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _reader(url: str, **env: str) -> MlflowReader:
    return MlflowReader(Production("https://airflow.example", load_credentials(None, env), mlflow_url=url))


def test_missing_or_wrong_credentials_are_named(mlflow_url: str) -> None:
    for env in ({}, {"MLOPS_REPRO_MLFLOW_USERNAME": USER, "MLOPS_REPRO_MLFLOW_PASSWORD": "wrong-password"}):
        with pytest.raises(ConfigError) as err:
            _reader(mlflow_url, **env).probe()
        assert f"Production MLflow at {mlflow_url} refused the request (HTTP 401" in err.value.what
        assert "MLOPS_REPRO_MLFLOW_USERNAME/_PASSWORD or MLOPS_REPRO_MLFLOW_TOKEN" in err.value.fix
        assert "wrong-password" not in str(err.value)
    with pytest.raises(ConfigError, match=r"HTTP 403: Permission denied"):
        _reader(mlflow_url, MLOPS_REPRO_MLFLOW_TOKEN="no-rights-token").probe()
    _reader(mlflow_url, MLOPS_REPRO_MLFLOW_USERNAME=USER, MLOPS_REPRO_MLFLOW_PASSWORD=PASSWORD).probe()
