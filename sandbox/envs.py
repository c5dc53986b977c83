"""The platform's Python environment: built once with uv from the pinned lock, cached, reused.

Airflow, MLflow, moto, embedded Postgres and the jobs all run from this one venv, keyed by a
hash of ``requirements/platform.lock.txt`` and the interpreter version, so a lock change builds
a new env and an unchanged lock never reinstalls.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sandbox import paths
from sandbox.errors import PreflightError
from sandbox.locks import file_lock

LOCK_FILE = paths.REQUIREMENTS_DIR / "platform.lock.txt"
_MARKER = ".mlops-sandbox-complete"


def env_key(lock_file: Path = LOCK_FILE, python: str | None = None) -> str:
    """Cache key: sha12 of the lock file's bytes plus the interpreter's version."""
    version = python or f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}"
    digest = hashlib.sha256(lock_file.read_bytes() + b"\0" + version.encode())
    return digest.hexdigest()[:12]


def platform_env_dir(lock_file: Path = LOCK_FILE) -> Path:
    return paths.cache_root() / "envs" / f"platform-{env_key(lock_file)}"


def env_python(env: Path) -> Path:
    return env / "bin" / "python"



def _is_complete(env: Path) -> bool:
    return (env / _MARKER).is_file() and env_python(env).exists()


def _uv() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError) as exc:
        found = shutil.which("uv")
        if found:
            return found
        raise PreflightError(
            "The `uv` binary that builds the platform environment was not found.",
            "Install the harness with its dependencies: `pip install -e .` (it pulls in the `uv` package).",
        ) from exc


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise PreflightError(
            f"Building the platform environment failed while {what} (exit {proc.returncode}).",
            "Check network access to the package index (or a warm uv cache) and that "
            f"{LOCK_FILE.name} resolves for this Python; then run `sandbox up` again.",
            detail=tail,
        )


def ensure_platform_env(lock_file: Path = LOCK_FILE, *, quiet: bool = True) -> Path:
    """Return the cached platform venv for ``lock_file``, building it first if it is missing.

    The build goes into a temporary sibling folder that is renamed into place only when it is
    complete, so an interrupted build never leaves a half-installed env that looks usable.
    """
    if not lock_file.is_file():
        raise PreflightError(
            f"The platform lock file {lock_file} is missing.",
            "Restore it from git (`git checkout requirements/platform.lock.txt`).",
        )
    env = platform_env_dir(lock_file)
    if _is_complete(env):
        return env
    with file_lock(env.with_name(env.name + ".lock")):
        if _is_complete(env):  # another process built it while we waited
            return env
        tmp = env.with_name(f"{env.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            uv = _uv()
            # --compile-bytecode (below): a fresh env otherwise compiles .pyc on first import,
            # which made the first `mlflow server` start take 14 s instead of 3.
            # --relocatable: entry-point scripts find their interpreter relative to themselves,
            # so the env still works after the rename below.
            _run(
                [uv, "venv", "--quiet", "--relocatable", "--python", sys.executable, str(tmp)],
                "creating the venv",
            )
            _run(
                [
                    uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--compile-bytecode",
                    "--python",
                    str(env_python(tmp)),
                    "-r",
                    str(lock_file),
                ],
                f"installing {lock_file.name}",
            )
            (tmp / _MARKER).write_text(env_key(lock_file) + "\n")
            if env.exists():  # an incomplete leftover from an older, interrupted layout
                shutil.rmtree(env)
            tmp.rename(env)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return env
