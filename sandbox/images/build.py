"""Build ``jobs/Dockerfile`` under its content-hash tag, unless the engine has it already.

Where the Dockerfile's base is neither on the engine nor pullable, a stand-in base is tagged in its place
(``standin.py``) so the Dockerfile itself stays untouched; every build and every reuse of such an image
says so. ``python -m sandbox.images build CONTEXT TAG`` runs this (the local backend's ``job-image`` step).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sandbox.errors import ConfigError, ServiceError
from sandbox.images import standin
from sandbox.images.engine import present
from sandbox.tools import run_streamed


@dataclass(frozen=True)
class Built:
    tag: str
    built: bool  # False: the engine had it
    seconds: float
    stand_in: str | None  # the stand-in note, when the image's base is one


def build_argv(docker_bin: str | Path, tag: str, context: Path) -> list[str]:
    return [str(docker_bin), "build", "--tag", tag, "--file", str(context / "Dockerfile"), str(context)]


def base_of(dockerfile: Path) -> str:
    """The image the Dockerfile builds on (its first ``FROM``)."""
    match = re.search(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", dockerfile.read_text(), re.M | re.I)
    if not match:
        raise ConfigError(f"{dockerfile} has no FROM line.", "Start the Dockerfile with `FROM <base image>`.")
    return match.group(1)


def stand_in_note(docker: str | Path, image: str) -> str | None:
    found = standin.stand_in_of(docker, image)
    return standin.note(*found) if found else None


def ensure_job_image(docker: str | Path, context: Path, tag: str, out: TextIO = sys.stdout) -> Built:
    """The image ``tag`` on the engine: reused when present, else built from ``context``."""
    started = time.monotonic()
    if present(docker, tag):
        return Built(tag, False, time.monotonic() - started, stand_in_note(docker, tag))
    base = base_of(context / "Dockerfile")
    if not present(docker, base):
        print(f"pulling the base image {base}", file=out, flush=True)
        pull = subprocess.run(
            [str(docker), "pull", base], capture_output=True, text=True, timeout=900, check=False
        )
        if pull.returncode != 0:
            why = (pull.stderr.strip().splitlines() or ["no answer"])[-1]
            print(f"{base} cannot be pulled ({why}): a stand-in takes its place", file=out, flush=True)
            standin.provide(docker, standin.Base.parse(base), why, out)
    stand_in = stand_in_note(docker, base)
    if stand_in:
        print(stand_in, file=out, flush=True)
    print(f"building {tag} from {context / 'Dockerfile'}", file=out, flush=True)
    argv = build_argv(docker, tag, context)
    code, tail = run_streamed(argv, out, keep=25)
    if code != 0:
        raise ServiceError(
            f"Building the job image {tag} from {context / 'Dockerfile'} failed (exit {code}).",
            "Fix the Dockerfile or jobs/requirements.txt (the build output is above), then run again.",
            detail="\n".join(tail),
        )
    seconds = time.monotonic() - started
    print(f"built {tag} in {seconds:.1f}s" + (f" ({stand_in})" if stand_in else ""), file=out, flush=True)
    return Built(tag, True, seconds, stand_in)
