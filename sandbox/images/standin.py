"""A stand-in for the job image's base where no registry serves it, so ``jobs/Dockerfile`` builds unchanged.

``python:<version>-slim-<suite>`` is replaced by Debian ``<suite>`` itself (``debootstrap --variant=minbase``
with python3, venv, pip and CA certificates) turned into an image by ``docker import``, with what the
official image gives a Dockerfile: ``python`` on PATH, ``pip`` allowed to install system-wide
(``PIP_BREAK_SYSTEM_PACKAGES=1``; the official image's Python is not Debian's) and a UTF-8 locale; plus
this host's CA bundle, so the build's package downloads trust what the host trusts (a proxy's CA). It is
built once per suite (``mlops-sandbox/debian-python:<suite>``), labelled as a stand-in with its Python
version, and tagged as the base. Its Python is Debian's (bookworm: 3.11.2), so the major.minor must match
the base's; every build says that it used a stand-in and which Python differs.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sandbox import paths
from sandbox.errors import ConfigError, PreflightError
from sandbox.images.engine import present
from sandbox.locks import file_lock
from sandbox.tools import run_streamed

REPOSITORY = "mlops-sandbox/debian-python"
LABEL = "org.mlops-sandbox.stand-in"  # value: the base it stands in for
PYTHON_LABEL = "org.mlops-sandbox.python"  # value: its Python version
PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
_BASE_RE = re.compile(
    r"^(?:docker\.io/)?(?:library/)?python:(?P<python>\d+\.\d+(?:\.\d+)?)(?:-slim)?-(?P<suite>[a-z]+)$"
)


def make_available(ref: str) -> str:
    """The fix when a base can be neither pulled nor stood in for."""
    return (
        f"Make {ref} available to the Docker engine (`docker pull {ref}` where a registry is reachable, "
        "or `docker load -i` a saved copy)"
    )


@dataclass(frozen=True)
class Base:
    """A ``python:<version>[-slim]-<suite>`` base reference."""

    ref: str
    python: str
    suite: str

    @classmethod
    def parse(cls, ref: str) -> Base:
        match = _BASE_RE.match(ref)
        if not match:
            raise ConfigError(
                f"The job image's base {ref!r} cannot be pulled, and a stand-in is only built for an "
                "official `python:<version>[-slim]-<debian suite>` base.",
                make_available(ref) + ".",
            )
        return cls(ref, match.group("python"), match.group("suite"))


def note(base: str, python: str) -> str:
    """What every build on a stand-in says."""
    return f"base {base} is a STAND-IN built from Debian: Python {python}, not {Base.parse(base).python}"


def provide(docker: str | Path, base: Base, why: str, out: TextIO) -> str:
    """Tag a stand-in as ``base.ref`` (building it first if needed); its Python version."""
    image = f"{REPOSITORY}:{base.suite}"
    with file_lock(paths.cache_root() / "images" / "stand-in.lock"):
        if not present(docker, image):
            _build(docker, base, image, why, out)
    python = _label(docker, image, PYTHON_LABEL)
    if python.split(".")[:2] != base.python.split(".")[:2]:
        raise PreflightError(
            f"The job image's base {base.ref} cannot be pulled ({why}), and Debian {base.suite}'s Python "
            f"{python} is no stand-in for Python {base.python}.",
            make_available(base.ref) + ".",
        )
    subprocess.run([str(docker), "tag", image, base.ref], check=True, capture_output=True, timeout=60)
    return python


def _build(docker: str | Path, base: Base, image: str, why: str, out: TextIO) -> None:
    fix = make_available(base.ref)
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if debootstrap is None:
        raise PreflightError(
            f"The job image's base {base.ref} cannot be pulled ({why}), and a stand-in needs `debootstrap`, "
            "which is not installed.",
            f"{fix}, or install debootstrap (`sudo apt-get install debootstrap`) and run as root.",
        )
    if os.geteuid() != 0:
        raise PreflightError(
            f"The job image's base {base.ref} cannot be pulled ({why}), and building a stand-in "
            "(debootstrap) needs root.",
            f"{fix}, or run `sandbox up --task-runtime docker` once as root to build the stand-in.",
        )
    started = time.monotonic()
    print(f"building the stand-in {image} from Debian {base.suite} (debootstrap --variant=minbase, about a "
          "minute)", file=out, flush=True)  # fmt: skip
    work = paths.cache_root() / "images"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stand-in-", dir=work) as tmp:
        root = Path(tmp) / "rootfs"
        _stream([debootstrap, "--variant=minbase", f"--include={PACKAGES}", base.suite, str(root)], out)
        python = _debian_python(root)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        bundle = _host_ca_bundle()
        if bundle is not None:
            shutil.copyfile(bundle, root / "etc/ssl/certs/ca-certificates.crt")
        changes = [f"ENV {k}={v}" for k, v in (("PIP_BREAK_SYSTEM_PACKAGES", "1"), ("LANG", "C.UTF-8"))]
        changes += [f"LABEL {LABEL}={base.ref}", f"LABEL {PYTHON_LABEL}={python}", 'CMD ["python3"]']
        argv = [str(docker), "import", *(a for c in changes for a in ("--change", c)), "-", image]
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(argv, stdin=tar.stdout, capture_output=True, text=True, check=False)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise PreflightError(
                f"Importing the stand-in base {image} failed.", fix, detail=imported.stderr[-800:]
            )
    print(
        f"stand-in {image} (Python {python}) built in {time.monotonic() - started:.0f}s", file=out, flush=True
    )


def _stream(argv: list[str], out: TextIO) -> None:
    code, tail = run_streamed(argv, out, keep=20)
    if code != 0:
        raise PreflightError(
            f"`{' '.join(argv[:2])} ...` failed (exit {code}) while building the stand-in base.",
            "Check access to the Debian mirror (debootstrap's default, deb.debian.org) and free disk space.",
            detail="\n".join(tail),
        )


def _debian_python(root: Path) -> str:
    """The upstream version of the rootfs's ``python3`` package (``3.11.2-1+b1`` -> ``3.11.2``)."""
    status = (root / "var/lib/dpkg/status").read_text()
    for block in status.split("\n\n"):
        if re.search(r"^Package: python3$", block, re.M):
            match = re.search(r"^Version: (?:\d+:)?(\d+\.\d+(?:\.\d+)?)", block, re.M)
            if match:
                return match.group(1)
    raise PreflightError("debootstrap installed no python3 package.", "Check the Debian mirror and suite.")


def _host_ca_bundle() -> Path | None:
    for candidate in (os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().openssl_cafile,
                      "/etc/ssl/certs/ca-certificates.crt"):  # fmt: skip
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _label(docker: str | Path, image: str, label: str) -> str:
    out = subprocess.run(
        [str(docker), "image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', image],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return out.stdout.strip() if out.returncode == 0 else ""


def stand_in_of(docker: str | Path, image: str) -> tuple[str, str] | None:
    """``(base, python)`` when ``image`` was built on a stand-in base (the label is inherited), else None."""
    base = _label(docker, image, LABEL)
    return (base, _label(docker, image, PYTHON_LABEL)) if base and base != "<no value>" else None
