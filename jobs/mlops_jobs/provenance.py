"""What a training run records so it can be reproduced: code, image, chart, data and library versions.

Tagged onto the train step's MLflow run (``mlops.*``), next to the ``airflow.*`` ids of
``RunContext.tags``. A value that is not known is left out rather than guessed.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from mlops_jobs import __version__
from mlops_jobs.config import Env

# The distributions whose versions decide the model (and the serving environment's pins).
LIBRARIES = ("mlflow-skinny", "scikit-learn", "numpy", "pandas", "scipy", "skops")
TAG_PREFIX = "mlops."
LIB_TAG_PREFIX = "mlops.lib."


def library_versions() -> dict[str, str]:
    """Installed versions of ``LIBRARIES`` (a missing one is skipped)."""
    found = {}
    for dist in LIBRARIES:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def tags(env: Env, manifest: dict[str, Any]) -> dict[str, str]:
    """The run's provenance tags.

    ``MLOPS_GIT_SHA`` is baked into the job image at build time (``--build-arg MLOPS_GIT_SHA=...``);
    ``MLOPS_JOB_IMAGE`` comes from the DAG (its deployment's image); ``MLOPS_CHART_VERSION`` from the
    platform ConfigMap.
    """
    git_sha = env.optional("MLOPS_GIT_SHA")
    out = {
        "mlops.code_version": git_sha or f"mlops_jobs=={__version__}",
        "mlops.jobs_version": __version__,
        "mlops.python_version": platform.python_version(),
        "mlops.data_content_hash": str(manifest["content_hash"]),
        "mlops.data_source": str(manifest.get("source", "generated")),
        **{f"{LIB_TAG_PREFIX}{dist}": version for dist, version in library_versions().items()},
    }
    for tag, variable in (
        ("mlops.git_sha", "MLOPS_GIT_SHA"),
        ("mlops.job_image", "MLOPS_JOB_IMAGE"),
        ("mlops.chart_version", "MLOPS_CHART_VERSION"),
    ):
        if env.optional(variable):
            out[tag] = env.optional(variable)
    return out
