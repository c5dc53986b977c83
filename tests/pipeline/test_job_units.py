"""Fast in-process checks of the job package's pure parts (no servers)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import missing

from .conftest import JOBS_DIR

sys.path.insert(0, str(JOBS_DIR))  # as PYTHONPATH does for the local runtime and the image
from mlops_jobs import __version__, data, gpu, provenance
from mlops_jobs.config import (
    DEFAULT_XCOM_PATH,
    ConfigError,
    Env,
    JobFailed,
    RunContext,
    data_source,
    expected_content_hash,
    tracking_uri,
    write_xcom,
)
from mlops_jobs.evaluate import TrainResult
from mlops_jobs.preprocess import PreprocessConfig, add_label_noise
from mlops_jobs.train import classification_metrics, pip_requirements


def test_label_noise_is_seeded_exact_and_always_changes_the_class() -> None:
    y = np.repeat(np.array([0, 1, 2]), 100)
    noisy = add_label_noise(y, 0.2, seed=7)
    assert np.array_equal(noisy, add_label_noise(y, 0.2, seed=7))
    assert not np.array_equal(noisy, add_label_noise(y, 0.2, seed=8))
    assert int((noisy != y).sum()) == 60
    assert set(np.unique(noisy)) <= {0, 1, 2}
    assert np.array_equal(add_label_noise(y, 0.0, seed=7), y)


def test_metrics_binary_and_multiclass() -> None:
    classes = np.array([0, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    binary = classification_metrics(np.array([0, 1, 1, 1]), proba, classes)
    assert binary["accuracy"] == 0.75
    assert binary["precision"] == 1.0 and binary["recall"] == pytest.approx(2 / 3)
    assert set(binary) == {"accuracy", "f1", "precision", "recall", "roc_auc"}
    proba3 = np.eye(3)[[0, 1, 2, 2]] * 0.8 + 0.2 / 3
    multi = classification_metrics(np.array([0, 1, 2, 1]), proba3, np.array([0, 1, 2]))
    assert multi["accuracy"] == 0.75 and 0 < multi["roc_auc"] <= 1


def test_config_errors_name_the_variable_and_the_fix() -> None:
    env = Env({"MLOPS_DATASET": "mnist"})
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'; valid datasets: breast_cancer, digits"):
        PreprocessConfig.from_env(env)
    with pytest.raises(ConfigError, match="MLOPS_DAG_ID is not set"):
        RunContext.from_env(Env({}))
    with pytest.raises(ConfigError, match="MLOPS_TRY_NUMBER='x' is not an integer"):
        RunContext.from_env(Env({"MLOPS_DAG_ID": "d", "MLOPS_DAG_RUN_ID": "r", "MLOPS_TASK_ID": "t",
                                 "MLOPS_TRY_NUMBER": "x"}))  # fmt: skip
    with pytest.raises(ConfigError, match="throw-away local store"):
        tracking_uri(Env({}))
    with pytest.raises(ConfigError, match="carries a password"):
        tracking_uri(Env({"MLFLOW_TRACKING_URI": "https://u:p@mlflow.example"}))
    with pytest.raises(ConfigError, match="http"):
        tracking_uri(Env({"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}))
    assert tracking_uri(Env({"MLFLOW_TRACKING_URI": "http://mlflow:5000"})) == "http://mlflow:5000"


def test_train_result_parsing() -> None:
    parsed = TrainResult.parse(
        '{"run_id": "abc", "model_name": "m", "model_version": "3", "experiment_id": "1"}'
    )
    assert parsed == TrainResult("abc", "m", 3)
    for bad in ("", "null", "{}", "not json", '{"run_id": "abc"}'):
        with pytest.raises(ConfigError, match="MLOPS_TRAIN_RESULT"):
            TrainResult.parse(bad)


def test_xcom_is_written_where_asked_and_skipped_without_a_sidecar(tmp_path) -> None:
    target = tmp_path / "out" / "return.json"
    assert write_xcom({"a": 1}, Env({"MLOPS_XCOM_PATH": str(target)})) == target
    assert target.read_text() == '{"a": 1}'
    # No MLOPS_XCOM_PATH: the KPO sidecar's path when its volume is mounted (a pod with
    # do_xcom_push), else nothing is written. This host decides which; both are asserted.
    if Path(DEFAULT_XCOM_PATH).parent.is_dir():
        assert write_xcom({"a": 1}, Env({})) == Path(DEFAULT_XCOM_PATH)
    else:
        assert write_xcom({"a": 1}, Env({})) is None
        assert not Path(DEFAULT_XCOM_PATH).parent.exists(), "must not create the sidecar's folder"


def test_pip_requirements_pin_the_running_versions() -> None:
    pins = dict(p.split("==") for p in pip_requirements())
    import sklearn

    assert pins["scikit-learn"] == sklearn.__version__
    assert {"mlflow-skinny", "numpy", "pandas", "skops"} <= set(pins)


def test_gpu_tags_name_the_gpus_and_are_empty_without_one() -> None:
    assert gpu.Gpus().tags() == {}
    assert gpu.Gpus(("NVIDIA H100", "NVIDIA H100")).tags() == {"gpu.count": "2", "gpu.name": "NVIDIA H100"}


def test_gpu_detection_reports_what_nvml_sees() -> None:
    """Checked against NVML itself on every host: 0 GPUs here, the real count on a GPU runner."""
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        expected = 0
    else:
        try:
            expected = pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    found = gpu.detect()
    assert found.count == expected
    assert (found.tags() == {}) is (expected == 0)


def test_production_code_has_no_undefined_or_unused_names() -> None:
    """Recipe bugs: undefined ``X_train``, ``f1``, ``os`` and ``latest_run`` (NameError at run time)."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        missing("ruff is not installed (the test extra provides it)")
    root = JOBS_DIR.parent
    proc = subprocess.run(
        [ruff, "check", "--no-cache", "--isolated", "--select", "F821,F822,F823,F841,F401", "dags", "jobs"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


HASH = "sha256:" + "ab" * 32


def test_data_pinning_params_are_validated_with_the_fix_named() -> None:
    assert expected_content_hash(Env({})) == ""
    assert expected_content_hash(Env({"MLOPS_DATA_CONTENT_HASH": f" {HASH} "})) == HASH
    for bad in ("ab" * 32, "sha256:xyz", "md5:" + "0" * 32):
        with pytest.raises(
            ConfigError, match=r"MLOPS_DATA_CONTENT_HASH=.* is not a content hash: write .sha256:."
        ):
            expected_content_hash(Env({"MLOPS_DATA_CONTENT_HASH": bad}))
    assert data_source(Env({"MLOPS_DATA_SOURCE": ""})) == ""
    # A folder: "saved/a" must never also match "saved/ab/...".
    assert data_source(Env({"MLOPS_DATA_SOURCE": "s3://mlops-data/saved/a"})) == "s3://mlops-data/saved/a/"
    for bad in ("runs/x/", "file:///tmp/x/", "s3://", "s3://B/x/"):
        with pytest.raises(ConfigError, match="must be an s3://<bucket>/<prefix>/ URI"):
            data_source(Env({"MLOPS_DATA_SOURCE": bad}))


def test_content_hash_check_names_both_hashes_and_the_fix() -> None:
    data.verify_content_hash("", "sha256:anything", "x", "fix")  # no expectation: no check
    data.verify_content_hash(HASH, HASH, "x", "fix")
    with pytest.raises(JobFailed) as err:
        data.verify_content_hash(HASH, "sha256:" + "cd" * 32, "the split generated from wine", "Use X.")
    message = str(err.value)
    assert message.startswith(
        "data content hash mismatch: the split generated from wine hashes to sha256:cdcd"
    )
    assert f"but this run expects {HASH} (DAG param data_content_hash)" in message
    assert message.endswith("refusing to run on different bytes. Use X.")


def test_content_hash_covers_names_and_bytes() -> None:
    files = {"train.csv": b"a,b\n1,2\n", "test.csv": b"a,b\n3,4\n"}
    assert data.content_hash(files) == data.content_hash(dict(reversed(files.items())))
    assert data.content_hash(files) != data.content_hash({**files, "test.csv": b"a,b\n3,5\n"})
    assert data.content_hash(files) != data.content_hash(
        {"train.csv": files["test.csv"], "test.csv": files["train.csv"]}
    )
    assert data.csv_rows(files["train.csv"]) == 1 and data.csv_rows(b"a,b\n1,2\n3,4") == 2


def test_provenance_tags_without_build_info_fall_back_to_the_package_version() -> None:
    tags = provenance.tags(Env({}), {"content_hash": HASH})
    assert tags["mlops.code_version"] == f"mlops_jobs=={__version__}"
    assert tags["mlops.jobs_version"] == __version__
    assert tags["mlops.data_content_hash"] == HASH
    assert tags["mlops.data_source"] == "generated"
    # Unknown values are left out rather than guessed.
    assert not {"mlops.git_sha", "mlops.job_image", "mlops.chart_version"} & set(tags)
    import sklearn

    assert tags["mlops.lib.scikit-learn"] == sklearn.__version__
    libs = {k.removeprefix("mlops.lib."): v for k, v in tags.items() if k.startswith("mlops.lib.")}
    # One list of libraries: the tags and the model's pinned requirements agree.
    assert sorted(f"{k}=={v}" for k, v in libs.items()) == sorted(pip_requirements())
    assert all(isinstance(v, str) for v in tags.values())


def test_provenance_tags_record_build_image_and_chart() -> None:
    env = Env({"MLOPS_GIT_SHA": "0123abc", "MLOPS_JOB_IMAGE": "registry.example/mlops-jobs:1.2.3",
               "MLOPS_CHART_VERSION": "platform-0.1.0"})  # fmt: skip
    tags = provenance.tags(env, {"content_hash": HASH, "source": "s3://b/p/"})
    assert tags["mlops.code_version"] == tags["mlops.git_sha"] == "0123abc"
    assert tags["mlops.job_image"] == "registry.example/mlops-jobs:1.2.3"
    assert tags["mlops.chart_version"] == "platform-0.1.0"
    assert tags["mlops.data_source"] == "s3://b/p/"
