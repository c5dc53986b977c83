"""External command-line tools (docker, kind, helm, kubectl): find them and check their versions.

Tools are looked up on ``PATH`` first, then in ``<repo>/.tools/bin`` (where ``.ci/install-helm`` puts helm
and kubectl). Nothing is ever downloaded: a missing tool is a PreflightError that says how to install it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sandbox.errors import PreflightError
from sandbox.paths import PROJECT_ROOT

TOOLS_BIN = PROJECT_ROOT / ".tools" / "bin"

MIN_VERSIONS: dict[str, tuple[int, int, int]] = {
    "docker": (20, 10, 0),
    "kind": (0, 33, 0),  # the pinned node image digest is built for kind v0.33.0
    "helm": (3, 19, 0),  # the Airflow chart 1.22 needs helm >= 3.19 (helm 4 works too)
    "kubectl": (1, 30, 0),  # apply, get, describe, logs: stable for years
}
VERSION_ARGS: dict[str, tuple[str, ...]] = {
    "docker": ("version", "--format", "{{.Client.Version}}"),
    "kind": ("version",),
    "helm": ("version", "--short"),
    "kubectl": ("version", "--client"),
}
INSTALL_HINTS: dict[str, str] = {
    "docker": "install Docker Engine (https://docs.docker.com/engine/install/) and start it",
    "kind": "install kind >= 0.33 (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
    "helm": "install helm >= 3.19 (https://helm.sh/docs/intro/install/), or run `bash .ci/install-helm`",
    "kubectl": "install kubectl (https://kubernetes.io/docs/tasks/tools/), or run `bash .ci/install-helm`",
}
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Tool:
    name: str
    path: Path
    version: tuple[int, int, int]


def find_tool(name: str, *, path: str | None = None, tools_dir: Path | None = TOOLS_BIN) -> Path | None:
    """The executable for ``name`` on ``path`` (default ``$PATH``), else in ``tools_dir``; None if absent."""
    found = shutil.which(name, path=path if path is not None else os.environ.get("PATH", ""))
    if found:
        return Path(found)
    if tools_dir is not None:
        candidate = tools_dir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def parse_version(text: str) -> tuple[int, int, int] | None:
    """First ``X.Y[.Z]`` in a tool's version output (``v3.19.0+g...``, ``kind v0.33.0 go1.24``)."""
    match = _VERSION_RE.search(text)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def tool_version(name: str, executable: Path, timeout: float = 20) -> tuple[int, int, int] | None:
    """Run the tool's version command; None when it fails or prints no version."""
    try:
        out = subprocess.run(
            [str(executable), *VERSION_ARGS.get(name, ("--version",))],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(out.stdout + "\n" + out.stderr)


def require(name: str, *, path: str | None = None, tools_dir: Path | None = TOOLS_BIN) -> Tool:
    """The tool, found and new enough; PreflightError naming what is missing and how to get it."""
    executable = find_tool(name, path=path, tools_dir=tools_dir)
    hint = INSTALL_HINTS.get(name, f"install {name}")
    if executable is None:
        where = "PATH" + (f" or {tools_dir}" if tools_dir is not None else "")
        raise PreflightError(f"`{name}` was not found on {where}.", hint)
    version = tool_version(name, executable)
    if version is None:
        raise PreflightError(f"`{executable} {' '.join(VERSION_ARGS.get(name, ()))}` failed.", hint)
    minimum = MIN_VERSIONS.get(name)
    if minimum and version < minimum:
        have, need = ".".join(map(str, version)), ".".join(map(str, minimum))
        raise PreflightError(f"`{name}` {have} at {executable} is too old (need >= {need}).", hint)
    return Tool(name, executable, version)


def run_streamed(argv: list[str], out: TextIO, keep: int) -> tuple[int, list[str]]:
    """Run ``argv`` with its output (stdout and stderr) copied line by line to ``out`` as it comes;
    the exit code and the last ``keep`` lines, for an error's detail."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        print(line.rstrip(), file=out, flush=True)
        tail = [*tail[-(keep - 1):], line.rstrip()]
    return proc.wait(), tail
