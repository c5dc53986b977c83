"""The values reader: Helm's merge semantics, the overlay allow-list, errors that name file, key and fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from sandbox.errors import ConfigError
from sandbox.paths import CHARTS_DIR
from sandbox.platform import values
from sandbox.platform.config import load_platform_config


def test_merge_is_helms() -> None:
    base = {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "keep": True, "gone": {"x": 1}}
    overlay = {"a": {"b": 2, "c": [3], "d": {"f": 2}}, "gone": None, "new": "n"}
    assert values.merge(base, overlay) == {
        "a": {"b": 2, "c": [3], "d": {"e": 1, "f": 2}},  # maps merge, lists replace
        "keep": True,
        "new": "n",
    }  # null deletes
    assert base["a"]["b"] == 1  # inputs untouched


def test_changed_keys_and_coverage() -> None:
    before = {"config": {"core": {"parallelism": 16, "x": 1}}, "env": [1]}
    after = {"config": {"core": {"parallelism": 4, "x": 1}}, "env": [1, 2]}
    assert values.changed_keys(before, after) == {"config.core.parallelism", "env"}
    assert values.covered("config.core.parallelism", ["config.core"])
    assert not values.covered("config.corex", ["config.core"])


@pytest.fixture
def charts(tmp_path: Path) -> Path:
    copy = tmp_path / "charts"
    shutil.copytree(CHARTS_DIR, copy, ignore=shutil.ignore_patterns("templates"))
    return copy


def test_an_overlay_outside_its_allow_list_is_refused_with_file_key_and_fix(charts: Path) -> None:
    (charts / "mlflow" / "values-local.yaml").write_text("workers: 1\nartifacts: {serveArtifacts: false}\n")
    with pytest.raises(ConfigError) as info:
        load_platform_config("local", charts)
    assert str(charts / "mlflow" / "values-local.yaml") in info.value.what
    assert "`artifacts.serveArtifacts`" in info.value.what and "local" in info.value.what
    assert "overlay-keys.yaml" in info.value.fix


def test_an_overlay_file_without_an_allow_list_is_refused(charts: Path) -> None:
    keys = yaml.safe_load((charts / "overlay-keys.yaml").read_text())
    del keys["postgres"]["local"]
    (charts / "overlay-keys.yaml").write_text(yaml.safe_dump(keys))
    with pytest.raises(ConfigError) as info:
        load_platform_config("local", charts)
    assert "lists no `local` keys for postgres" in info.value.what


def test_a_missing_value_names_the_file_and_key(charts: Path) -> None:
    path = charts / "platform" / "values.yaml"
    data = yaml.safe_load(path.read_text())
    del data["dataBucket"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_platform_config(None, charts)
    assert f"{path} `dataBucket`" in info.value.what and "field required" in info.value.what
    assert "`dataBucket`" in info.value.fix


def test_a_wrong_value_type_names_the_file_and_key(charts: Path) -> None:
    (charts / "mlflow" / "values-local.yaml").write_text("workers: many\n")
    with pytest.raises(ConfigError) as info:
        load_platform_config("local", charts)
    assert f"{charts / 'mlflow' / 'values-local.yaml'} `workers`" in info.value.what


def test_charts_that_disagree_on_a_fact_are_refused(charts: Path) -> None:
    path = charts / "platform" / "values.yaml"
    data = yaml.safe_load(path.read_text())
    data["dataBucket"] = "other-bucket"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_platform_config(None, charts)
    assert "'other-bucket'" in info.value.what and "`buckets`" in info.value.what


def test_invalid_yaml_names_the_line(charts: Path) -> None:
    (charts / "s3" / "values-local.yaml").write_text("buckets: [a\n")
    with pytest.raises(ConfigError) as info:
        load_platform_config("local", charts)
    assert (
        f"{charts / 's3' / 'values-local.yaml'}:" in info.value.what and "not valid YAML" in info.value.what
    )


def test_unknown_keys_are_read_tolerantly(charts: Path) -> None:
    path = charts / "mlflow" / "values.yaml"
    data = yaml.safe_load(path.read_text())
    data["somethingProductionAdds"] = {"x": 1}
    data["artifacts"]["extra"] = "y"
    path.write_text(yaml.safe_dump(data))
    assert load_platform_config(None, charts).mlflow.workers == 2


def test_airflow_config_and_env_as_airflow_reads_them() -> None:
    a = load_platform_config("local").airflow
    env = a.config_env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"  # the local overlay over production's 16
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert a.deployment_env()["MLOPS_RETRY_DELAY_SECONDS"] == "2"
    assert a.deployment_env()["MLOPS_MAX_ACTIVE_RUNS"] == "4"
    assert a.users() == ["admin"]
