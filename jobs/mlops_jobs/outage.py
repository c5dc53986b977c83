"""A platform service that cannot be reached, said in one line: which service, where, what for.

Without this a step that loses S3 or MLflow ends in a long traceback of urllib3 and botocore retries;
with it the task log's last line names the endpoint (and the bucket), what the step was doing, and
that Airflow's retry takes over. Both clients retry on their own first: boto3 per its retry config
(``data.s3_client``), MLflow per ``MLFLOW_HTTP_REQUEST_*`` (the platform ConfigMap).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

_CONNECTION_WORDS = (
    "Connection refused", "Failed to establish a new connection", "Max retries exceeded",
    "Connection aborted", "Connection reset", "RemoteDisconnected", "timed out", "Read timed out",
)  # fmt: skip


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


_REASONS = {
    "Connection refused": "connection refused", "Could not connect": "could not connect",
    "Read timed out": "read timed out", "timed out": "timed out", "Connection reset": "connection reset",
    "Connection aborted": "connection aborted",
}  # fmt: skip


def _reason(text: str) -> str:
    return next((phrase for words, phrase in _REASONS.items() if words in text), "no answer")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def _s3(exc: BaseException) -> str | None:
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is None:
        return None
    for link in _chain(exc):
        if isinstance(link, botocore.EndpointConnectionError | botocore.ConnectTimeoutError):
            url = getattr(link, "kwargs", {}).get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3", "")
            url = str(url)
            parts = urlsplit(url)
            bucket = os.environ.get("MLOPS_DATA_BUCKET", "")
            path = parts.path.lstrip("/")
            if path.split("/", 1)[0] and not parts.netloc.startswith(f"{bucket}."):
                bucket, _, key = path.partition("/")
            else:
                key = path
            what = f"bucket '{bucket}'" + (f", object {key}" if key else "")
            return (
                f"cannot reach the S3 endpoint {_origin(url)} ({what}): {_reason(str(link))} after boto3's "
                "retries. The S3 service is down or unreachable; Airflow retries this step."
            )
    return None


def _mlflow(exc: BaseException) -> str | None:
    mlflow_exc = sys.modules.get("mlflow.exceptions")
    if mlflow_exc is None:
        return None
    for link in _chain(exc):
        text = str(link)
        if isinstance(link, mlflow_exc.MlflowException) and any(w in text for w in _CONNECTION_WORDS):
            uri = os.environ.get("MLFLOW_TRACKING_URI", "")
            retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7 (MLflow's default)")
            request = text.split(" failed with exception", 1)[0].removeprefix("API request to ")
            path = urlsplit(request).path if request.startswith("http") else ""
            return (
                f"cannot reach the MLflow tracking server at {_origin(uri) or uri} "
                f"({path or 'tracking API'}): {_reason(text)} after {retries} retries "
                "(MLFLOW_HTTP_REQUEST_MAX_RETRIES). The tracking server is down or unreachable; Airflow "
                "retries this step."
            )
    return None


def explain(exc: BaseException) -> str | None:
    """One line naming the unreachable service when ``exc`` comes from one, else None."""
    return _s3(exc) or _mlflow(exc)
