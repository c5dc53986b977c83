"""The job image's recipe: pinned base and dependencies (the tested versions), non-root user.

The image itself is built where a registry is reachable (kind backend, CI); these checks keep the
recipe honest everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import JOBS_DIR, ROOT


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            pins[name.lower()] = version
    return pins


def test_job_requirements_are_pinned_to_the_platform_lock() -> None:
    jobs = _pins(JOBS_DIR / "requirements.txt")
    platform = _pins(ROOT / "requirements" / "platform.lock.txt")
    assert {"mlflow-skinny", "scikit-learn", "numpy", "pandas", "skops", "boto3", "nvidia-ml-py"} <= set(jobs)
    assert {name: v for name, v in jobs.items() if platform.get(name) != v} == {}


def test_dockerfile_pins_the_base_and_runs_as_non_root() -> None:
    dockerfile = (JOBS_DIR / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert "requirements.txt" in dockerfile and "mlops_jobs" in dockerfile
