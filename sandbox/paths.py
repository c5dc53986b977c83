"""Where the project's files and the harness's state live."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DAGS_DIR = PROJECT_ROOT / "dags"
JOBS_DIR = PROJECT_ROOT / "jobs"
CHARTS_DIR = PROJECT_ROOT / "charts"
SCENARIOS_DIR = PROJECT_ROOT / "scenarios"
REQUIREMENTS_DIR = PROJECT_ROOT / "requirements"


def state_root() -> Path:
    """Root of all sandboxes' state (``.sandbox/`` in the project, or ``$MLOPS_SANDBOX_HOME``)."""
    return Path(os.environ.get("MLOPS_SANDBOX_HOME", PROJECT_ROOT / ".sandbox"))


def sandbox_dir(name: str) -> Path:
    """State folder of one named sandbox: pid files, ports, logs, secrets."""
    return state_root() / name


def reports_dir() -> Path:
    return state_root() / "reports"


def cache_root() -> Path:
    """Cache shared by all sandboxes (Python environments keyed by requirement hashes)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlops-sandbox"
    return Path(os.environ.get("MLOPS_SANDBOX_CACHE", default))
