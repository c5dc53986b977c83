"""`helm upgrade` must never patch a Job's pod template (immutable: "field is immutable").

Every chart is rendered twice, the second time with every image changed (what a new job image, a new S3
image or a chart bump does); each Job whose spec changed must have a new name, or be a helm hook deleted
before re-creation. The official Airflow chart cannot be rendered here: its migration Job is checked at
the values level (what the chart feeds it), and with a real render when MLOPS_AIRFLOW_CHART is set.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.backends.kind import helm
from sandbox.paths import CHARTS_DIR
from sandbox.tools import find_tool
from tests.charts.conftest import CASES, OVERLAYS, Render, airflow_values, case_id

# Every image value of the project charts, changed.
CHANGED_IMAGES = {
    "postgres": ["image.tag=99.0"],
    "s3": ["seaweedfs.image.tag=9.99", "localstack.image.tag=9.9.9", "minio.image.digest=sha256:" + "0" * 64,
           "bucketJob.image.tag=v9.9.9-full"],
    "mlflow": ["image.tag=v9.9.9-full"],
    "platform": [],
}  # fmt: skip


def _jobs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Job"}


def _recreated_by_helm(job: dict[str, Any]) -> bool:
    ann = job["metadata"].get("annotations") or {}
    return "helm.sh/hook" in ann and "before-hook-creation" in ann.get("helm.sh/hook-delete-policy", "")


def immutable_conflicts(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """Jobs that keep their name while their spec changes (and are not re-created hooks)."""
    old, new = _jobs(before), _jobs(after)
    return [
        f"Job/{name}: spec changed under the same name"
        for name in old.keys() & new.keys()
        if old[name]["spec"] != new[name]["spec"] and not _recreated_by_helm(new[name])
    ]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_upgrade_with_new_images_never_patches_a_job(
    render: Render, case: tuple[str, str, tuple[str, ...]]
) -> None:
    chart, value_set, sets = case
    before = render(chart, value_set, sets)
    after = render(chart, value_set, (*sets, *CHANGED_IMAGES[chart]))
    assert immutable_conflicts(before, after) == []


def test_s3_bucket_job_is_renamed_when_its_image_changes(render: Render) -> None:
    (before,) = _jobs(render("s3", "sandbox")).values()
    (after,) = _jobs(render("s3", "sandbox", ("bucketJob.image.tag=v9.9.9-full",))).values()
    assert before["metadata"]["name"] != after["metadata"]["name"]
    (same,) = _jobs(render("s3", "sandbox", ("seaweedfs.image.tag=9.99",))).values()
    assert same["metadata"]["name"] == before["metadata"]["name"], "an unrelated change keeps the Job"


def migration_job_inputs(values: dict[str, Any]) -> dict[str, Any]:
    """What the official chart (1.22, templates/jobs/migrate-database-job.yaml) puts into the migration
    Job's pod template from the values: the global env/volumes when `applyCustomEnv` (default true), its
    own env, volumes, resources, image and security contexts."""
    job = values.get("migrateDatabaseJob", {})
    custom = job.get("applyCustomEnv", True)
    return {
        "env": (values.get("env", []), values.get("extraEnv"), values.get("secret", [])) if custom else None,
        "envFrom": values.get("extraEnvFrom") if custom else None,
        "job": {k: v for k, v in job.items() if k not in ("enabled",)},
        "volumes": (values.get("volumes", []), values.get("volumeMounts", [])),
        "image": [values.get(k) for k in ("defaultAirflowRepository", "defaultAirflowTag", "images")],
        "securityContexts": values.get("securityContexts"),
        "config": values.get("config"),
    }  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_airflow_migration_job_does_not_change_with_the_job_image(overlay: str) -> None:
    path = CHARTS_DIR / "airflow" / f"values-{overlay}.yaml"
    first, second = (helm.airflow_generated_values(path, f"mlops-jobs:{tag}") for tag in ("aaaa", "bbbb"))
    a, b = airflow_values(overlay, [first]), airflow_values(overlay, [second])
    assert a != b, "the job image must reach the DAG deployment config"
    assert migration_job_inputs(a) == migration_job_inputs(b), (
        "the migration Job (a plain Job, immutable) would change with MLOPS_JOB_IMAGE"
    )
    assert a["migrateDatabaseJob"]["useHelmHooks"] is False


def test_airflow_render_twice_opt_in(tmp_path: Path) -> None:
    chart = os.environ.get("MLOPS_AIRFLOW_CHART")
    if not chart:
        pytest.skip("the official Airflow chart cannot be pulled here; to run this: helm pull airflow --repo "
                    "https://airflow.apache.org --version 1.22.0 --untar -d /tmp/charts && "
                    "MLOPS_AIRFLOW_CHART=/tmp/charts/airflow pytest tests/charts")  # fmt: skip
    helm_bin = find_tool("helm")
    assert helm_bin is not None, "helm is not installed: run `bash .ci/install-helm`"
    renders = []
    for tag in ("aaaa", "bbbb"):
        gen = tmp_path / f"{tag}.yaml"
        path = CHARTS_DIR / "airflow" / "values-sandbox.yaml"
        gen.write_text(yaml.safe_dump(helm.airflow_generated_values(path, f"mlops-jobs:{tag}")))
        argv = [
            str(helm_bin),
            "template",
            "airflow",
            chart,
            "--namespace",
            "mlops",
            "--values",
            str(CHARTS_DIR / "airflow" / "values.yaml"),
            "--values",
            str(path),
            "--values",
            str(gen),
        ]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        assert out.returncode == 0, out.stderr
        renders.append([d for d in yaml.safe_load_all(out.stdout) if d])
    assert immutable_conflicts(*renders) == []
