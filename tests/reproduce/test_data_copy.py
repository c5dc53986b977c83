"""Copying a run's split between real S3 servers (moto): byte for byte, hash checked, errors named.

Two moto servers play production's S3 and the sandbox's; a third one enforces authentication (moto
checks keys only when ``INITIAL_NO_AUTH_ACTION_COUNT`` is set), to see an S3 refuse credentials.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.errors import ConfigError, ServiceError
from sandbox.ports import LOOPBACK, free_ports
from sandbox.reproduce import data
from sandbox.reproduce.access import Production, load_credentials

pytestmark = pytest.mark.slow

KEYS = {
    "MLOPS_REPRO_S3_ACCESS_KEY_ID": "prod-reader",
    "MLOPS_REPRO_S3_SECRET_ACCESS_KEY": "prod-reader-secret",
}
RUN = "manual__2026-11-27T12:21:46+00:00"
FILES = {"train.csv": b"a,target\n1,0\n2,1\n", "test.csv": b"a,target\n3,1\n"}
MANIFEST = b'{"dataset": "wine"}'


@contextlib.contextmanager
def moto(env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_ports(1)[0]
    url = f"http://{LOOPBACK}:{port}"
    argv = [str(Path(sys.executable).parent / "moto_server"), "-H", LOOPBACK, "-p", str(port)]
    proc = subprocess.Popen(
        argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=2).close()
                break
            except urllib.error.HTTPError:  # it answers (403 where it checks credentials): up
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start on {url}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    with moto() as prod, moto() as sandbox:
        yield prod, sandbox


def _client(url: str) -> object:
    return data.s3_client(
        url, KEYS["MLOPS_REPRO_S3_ACCESS_KEY_ID"], KEYS["MLOPS_REPRO_S3_SECRET_ACCESS_KEY"], ""
    )


def _production(url: str) -> Production:
    return Production(
        "https://airflow.example", load_credentials(None, KEYS), s3_url=url, data_bucket="prod-data"
    )


@pytest.fixture(scope="module")
def stored(servers: tuple[str, str]) -> str:
    """Production's S3 holds the run's split where preprocess_data wrote it; the sandbox has its bucket."""
    prod, sandbox = servers
    client = _client(prod)
    client.create_bucket(Bucket="prod-data")
    for name, body in {**FILES, "manifest.json": MANIFEST}.items():
        client.put_object(Bucket="prod-data", Key=f"runs/{RUN}/{name}", Body=body)
        client.put_object(Bucket="prod-data", Key=f"saved/other/{name}", Body=body + b"9,9\n")
    _client(sandbox).create_bucket(Bucket="mlops-data")
    return data.content_hash(FILES)


def test_the_split_is_copied_byte_for_byte_and_its_hash_pinned(servers: tuple[str, str], stored: str) -> None:
    prod, sandbox = servers
    split = data.read_production_split(_production(prod), RUN, None)
    assert split.origin == f"s3://prod-data/runs/{RUN}/ on production S3 ({prod})"
    steps: list[str] = []
    copied = data.copy_split(
        split, stored, _client(sandbox), "mlops-data", data.copy_key(RUN), "sandbox S3", on_step=steps.append
    )
    assert copied.uri == "s3://mlops-data/reproductions/manual__2026-11-27T12_21_46_00_00/"
    assert copied.content_hash == stored and copied.objects == ["train.csv", "test.csv", "manifest.json"]
    for name, body in {**FILES, "manifest.json": MANIFEST}.items():
        key = f"reproductions/manual__2026-11-27T12_21_46_00_00/{name}"
        assert _client(sandbox).get_object(Bucket="mlops-data", Key=key)["Body"].read() == body
    assert steps[-1].startswith("copied manifest.json")  # last, as preprocess_data writes it


def test_data_that_is_not_what_the_run_trained_on_is_not_copied(
    servers: tuple[str, str], stored: str
) -> None:
    prod, sandbox = servers
    split = data.read_production_split(_production(prod), RUN, "s3://prod-data/saved/other")
    with pytest.raises(ConfigError, match="it is not the data that run trained on") as err:
        data.copy_split(split, stored, _client(sandbox), "mlops-data", "reproductions/other/", "sandbox S3")
    assert f"recorded data_content_hash {stored}" in err.value.what
    listed = _client(sandbox).list_objects_v2(Bucket="mlops-data", Prefix="reproductions/other/")
    assert listed.get("KeyCount", 0) == 0


def test_a_local_folder_can_be_the_source(tmp_path: Path, stored: str) -> None:
    for name, body in FILES.items():
        (tmp_path / name).write_bytes(body)
    split = data.read_production_split(_production("http://unused"), RUN, str(tmp_path))
    assert split.content_hash == stored and split.manifest is None
    (tmp_path / "test.csv").unlink()
    with pytest.raises(ConfigError, match=r"has no test\.csv"):
        data.read_production_split(_production("http://unused"), RUN, str(tmp_path))


def test_missing_data_names_the_object_and_the_way_out(servers: tuple[str, str], stored: str) -> None:
    prod, _ = servers
    with pytest.raises(ConfigError) as err:
        data.read_production_split(_production(prod), "manual__gone", None)
    assert err.value.what.startswith(
        "s3://prod-data/runs/manual__gone/train.csv does not exist on production S3"
    )
    assert "--data-from" in err.value.fix
    wrong_bucket = Production("https://a", load_credentials(None, KEYS), s3_url=prod, data_bucket="nope")
    with pytest.raises(ConfigError, match=r"does not exist on production S3 .*NoSuchBucket"):
        data.read_production_split(wrong_bucket, RUN, None)


def test_an_unreachable_s3_is_named(stored: str) -> None:
    dead = f"http://{LOOPBACK}:{free_ports(1)[0]}"
    with pytest.raises(ServiceError, match=rf"production S3 \({dead}\) is unreachable"):
        data.read_production_split(_production(dead), RUN, None)


def test_an_s3_that_refuses_the_credentials_is_named_without_them() -> None:
    with moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as guarded, pytest.raises(ConfigError) as err:
        data.read_production_split(_production(guarded), RUN, None)
    assert "refused the credentials" in err.value.what and "InvalidAccessKeyId" in err.value.what
    assert "MLOPS_REPRO_S3_ACCESS_KEY_ID" in err.value.fix
    assert KEYS["MLOPS_REPRO_S3_SECRET_ACCESS_KEY"] not in str(err.value)
