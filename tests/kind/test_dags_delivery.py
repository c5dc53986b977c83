"""DAGs reach Airflow on any cluster: kind by its node mount, an existing cluster (--context) by ConfigMap.

The ConfigMap path is exercised for real as far as it goes without a cluster: the plan's ConfigMap and the
generated values are laid out the way the kubelet lays out a ConfigMap volume with `items` (AtomicWriter:
a `..<timestamp>` folder, `..data` pointing at it, one symlink per top-level entry), the init container's
copy command runs on it, and Airflow's own DAG folder walk and parse (tests/pipeline/dag_probe.py) run on
the copy. The same walk on the raw volume layout shows why the copy exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox import paths
from sandbox.backends.kind.plan import Step, plan
from tests.charts.conftest import airflow_values

PROBE = Path(__file__).resolve().parents[1] / "pipeline" / "dag_probe.py"


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path / "state"))


def _by_key(steps: list[Step]) -> dict[str, Step]:
    return {s.key: s for s in steps}


def _context_values(gpu: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    steps = _by_key(plan("dev", gpu=gpu, kube_context="prod-like", job_image="r.example/mlops-jobs:1"))
    (generated,) = (yaml.safe_load(next(iter(steps["helm:airflow"].files.values()))),)
    overlay = "sandbox-gpu" if gpu else "sandbox"
    configmap = yaml.safe_load(steps["dags"].stdin or "") if "dags" in steps else {}
    return airflow_values(overlay, [generated]), configmap


def _host_paths(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [v for k, v in tree.items() if k == "hostPath"] + [
            h for v in tree.values() for h in _host_paths(v)
        ]
    if isinstance(tree, list):
        return [h for v in tree for h in _host_paths(v)]
    return []


@pytest.mark.parametrize("gpu", [False, True])
def test_existing_cluster_gets_no_host_path(gpu: bool) -> None:
    """A hostPath exists only on kind nodes (the extraMount): on another cluster the pods never start."""
    values, _ = _context_values(gpu)
    assert _host_paths(values) == []


def test_kind_keeps_the_node_mount_fast_path() -> None:
    from sandbox.backends.kind import dags

    steps = _by_key(plan("dev"))
    assert "dags" not in steps
    values = airflow_values("sandbox", [yaml.safe_load(next(iter(steps["helm:airflow"].files.values())))])
    for component in dags.COMPONENTS:
        assert _host_paths(values[component]) == [{"path": "/mlops/dags", "type": "Directory"}], component
    assert _host_paths(values.get("volumes", [])) == [], "the migration Job must not mount the DAGs"


def _kubelet_layout(volume: Path, configmap: dict[str, Any], items: list[dict[str, str]]) -> None:
    """A ConfigMap volume with `items` as the kubelet writes it (AtomicWriter)."""
    stamp = volume / "..2026_11_27_12_00_00.000000001"
    for item in items:
        target = stamp / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap["data"][item["key"]])
    (volume / "..data").symlink_to(stamp.name)
    for top in sorted({item["path"].split("/")[0] for item in items}):
        (volume / top).symlink_to(f"..data/{top}")


def _parse(folder: Path, home: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    out_file = home / "probe.json"
    proc = subprocess.run([sys.executable, str(PROBE), str(folder), str(out_file)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    if proc.returncode != 0:
        return {"error": (proc.stdout + proc.stderr)[-3000:]}
    return json.loads(out_file.read_text())


def test_configmap_dags_reach_the_dag_folder_and_parse(tmp_path: Path) -> None:
    from sandbox.backends.kind import dags

    values, configmap = _context_values()
    component = values["scheduler"]
    (src,) = [v for v in component["extraVolumes"] if "configMap" in v]
    assert src["configMap"]["name"] == configmap["metadata"]["name"] == dags.CONFIGMAP
    shipped = {item["path"] for item in src["configMap"]["items"]}
    assert shipped == set(dags.files(paths.DAGS_DIR)), "every DAG file (and only those) is shipped"

    volume, folder = tmp_path / "volume", tmp_path / "dags"
    volume.mkdir()
    folder.mkdir()
    _kubelet_layout(volume, configmap, src["configMap"]["items"])
    (init,) = [c for c in component["extraInitContainers"] if c["name"] == "copy-dags"]
    argv = [sys.executable if a == "python" else a for a in init["command"]]
    argv = [str(volume) if a == dags.SOURCE_PATH else str(folder) if a == dags.DAGS_PATH else a for a in argv]
    subprocess.run(argv, check=True, timeout=60)
    mounts = {m["mountPath"] for m in component["extraVolumeMounts"]}
    assert dags.DAGS_PATH in mounts

    result = _parse(folder, tmp_path / "home")
    assert result.get("import_errors") == {}, result
    assert result["dag_ids"] == ["train_model_pipeline"]


def test_raw_configmap_volume_is_not_a_dag_folder(tmp_path: Path) -> None:
    """Why the copy: Airflow's DAG folder walk follows the kubelet's symlinks into a recursive-loop error."""
    values, configmap = _context_values()
    (src,) = [v for v in values["scheduler"]["extraVolumes"] if "configMap" in v]
    volume = tmp_path / "volume"
    volume.mkdir()
    _kubelet_layout(volume, configmap, src["configMap"]["items"])
    result = _parse(volume, tmp_path / "home")
    assert "Detected recursive loop" in result.get("error", ""), result


def test_dags_configmap_too_big_is_a_clear_error(tmp_path: Path) -> None:
    from sandbox.backends.kind import dags
    from sandbox.errors import ConfigError

    (tmp_path / "big.py").write_text("x = 1\n" * 200_000)
    with pytest.raises(ConfigError, match="more than a ConfigMap can carry") as err:
        dags.configmap_manifest(tmp_path, namespace="mlops")
    assert "git-sync" in err.value.fix
