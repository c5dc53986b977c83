"""The Docker engine: found, running and usable by this user, or a PreflightError saying which and what to do.

The harness drives it with the ``docker`` CLI (as the user's own shell would, contexts included); the
endpoint the CLI talks to is handed to the job containers' launcher (``DOCKER_HOST``), so the image is
built and run on the same engine.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import PreflightError
from sandbox.tools import find_tool

INSTALL = (
    "Install Docker Engine (Debian/Ubuntu: `sudo apt-get install docker.io`; others: "
    "https://docs.docker.com/engine/install/), start it, and check that `docker version` shows a Server."
)
START = (
    "Start the daemon (`sudo systemctl start docker`; without systemd: `sudo dockerd > /var/log/dockerd.log "
    "2>&1 &`), or point DOCKER_HOST at a running one; then check `docker version`."
)
PERMISSION = (
    "Let this user use the daemon: `sudo usermod -aG docker $USER` and log in again (or run rootless "
    "Docker and set DOCKER_HOST); then check `docker version`."
)


@dataclass(frozen=True)
class Engine:
    docker: Path  # the CLI
    host: str  # the endpoint it talks to (DOCKER_HOST, else the current context's)
    version: str  # the daemon's


def diagnose(output: str, host: str, purpose: str) -> PreflightError:
    """The error for a failed ``docker version``, from what the CLI printed."""
    text = output.strip()
    if "permission denied" in text.lower():
        return PreflightError(
            f"{purpose}, but this user may not use the Docker daemon at {host} (permission denied on its "
            "socket).",
            PERMISSION,
            detail=text[-800:],
        )
    if "Cannot connect to the Docker daemon" in text or "Is the docker daemon running" in text:
        return PreflightError(f"{purpose}, but the Docker daemon is not running (nothing answers at {host}).",
                              START, detail=text[-800:])  # fmt: skip
    return PreflightError(f"{purpose}, but the Docker daemon at {host} does not answer.", START,
                          detail=text[-800:] or "(no output)")  # fmt: skip


def check(
    purpose: str, *, docker: Path | None = None, path: str | None = None, timeout: float = 20
) -> Engine:
    """The engine the ``docker`` CLI (``docker``, else found on ``path``) reaches; ``purpose`` starts every
    error (why Docker is needed)."""
    docker = docker or find_tool("docker", path=path, tools_dir=None)
    if docker is None:
        raise PreflightError(f"{purpose}, but the `docker` command is not installed (not on PATH).", INSTALL)
    host = _run([str(docker), "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"], timeout)
    where = host.stdout.strip() if host.returncode == 0 and host.stdout.strip() else "the default socket"
    out = _run([str(docker), "version", "--format", "{{.Server.Version}}"], timeout)
    if out.returncode != 0 or not out.stdout.strip():
        raise diagnose(out.stderr or out.stdout, where, purpose)
    return Engine(docker, where, out.stdout.strip())


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            argv, 124, "", f"no answer from `{' '.join(argv[1:3])}` in {timeout:.0f}s"
        )


def present(docker_bin: str | Path, ref: str) -> bool:
    """Whether the engine has the image ``ref``."""
    out = subprocess.run(
        [str(docker_bin), "image", "inspect", ref], capture_output=True, timeout=60, check=False
    )
    return out.returncode == 0
