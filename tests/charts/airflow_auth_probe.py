"""Start Airflow's auth manager against the api-server pod's files as the chart values lay them out.

Run by ``test_airflow_auth.py`` inside a private mount namespace (``unshare -m``), as root: a tmpfs over
``/opt`` (invisible outside the namespace) holds the container paths; each volume of the api-server pod is
a host folder bind-mounted at its ``mountPath``, read-only where the kubelet makes it so (every Secret
volume, and any mount with ``readOnly: true``), so root meets a real ``EROFS`` exactly as the pod would.
The init containers' commands run first, each with its own mounts, then the main container's start-up:
``airflow.api_fastapi.app.init_auth_manager()`` (what the api-server calls) and a login-time read of the
passwords (``get_passwords``). Usage: ``airflow_auth_probe.py <case.json> <result.json>``; the case names
the volumes, init containers, main container mounts, Airflow config and the Secrets' data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

STARTUP = """
import json, sys
from airflow.api_fastapi.app import init_auth_manager
am = init_auth_manager()
print("PASSWORDS=" + json.dumps(am.get_passwords()))
"""


def _mount(source: Path, target: str, read_only: bool) -> None:
    Path(target).mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(source), target], check=True)
    if read_only:
        subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True)


def _umount(targets: list[str]) -> None:
    for target in reversed(targets):
        subprocess.run(["umount", target], check=True)


def _volume_dirs(case: dict[str, Any], root: Path) -> dict[str, tuple[Path, bool]]:
    """volume name -> (host folder, always read-only?) for the Secret and emptyDir volumes of the pod."""
    out = {}
    for vol in case["volumes"]:
        folder = root / vol["name"]
        folder.mkdir()
        if "secret" in vol:
            data = case["secrets"][vol["secret"]["secretName"]]
            for key, value in data.items():
                (folder / key).write_text(value)
                (folder / key).chmod(vol["secret"].get("defaultMode", 0o644))
            out[vol["name"]] = (folder, True)  # the kubelet mounts Secret volumes read-only, always
        elif "emptyDir" in vol:
            folder.chmod(0o777)
            out[vol["name"]] = (folder, False)
        else:
            raise SystemExit(f"volume {vol['name']}: only secret and emptyDir volumes are modelled")
    return out


def _with_mounts(mounts: list[dict[str, Any]], dirs: dict[str, tuple[Path, bool]], run: Any) -> Any:
    targets = []
    try:
        for m in mounts:
            folder, always_ro = dirs[m["name"]]
            _mount(folder, m["mountPath"], always_ro or bool(m.get("readOnly")))
            targets.append(m["mountPath"])
        return run()
    finally:
        _umount(targets)


def main(case: dict[str, Any]) -> dict[str, Any]:
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/opt"], check=True)  # private namespace only
    result: dict[str, Any] = {"init": []}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "volumes").mkdir()
        dirs = _volume_dirs(case, Path(tmp) / "volumes")
        for init in case["init_containers"]:
            argv = [*init.get("command", []), *init.get("args", [])]
            out = _with_mounts(init.get("volumeMounts", []), dirs,
                               lambda a=argv: subprocess.run(a, capture_output=True, text=True))  # fmt: skip
            result["init"].append(
                {"name": init["name"], "rc": out.returncode, "output": out.stdout + out.stderr}
            )
            if out.returncode != 0:
                return result
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env["AIRFLOW_HOME"] = str(Path(tmp) / "airflow-home")
        for section, options in case["config"].items():
            for key, value in options.items():
                env[f"AIRFLOW__{section.upper()}__{key.upper()}"] = str(value)
        out = _with_mounts(case["main_mounts"], dirs, lambda: subprocess.run(
            [sys.executable, "-c", STARTUP], capture_output=True, text=True, env=env, timeout=240),
        )  # fmt: skip
        lines = [line for line in out.stdout.splitlines() if line.startswith("PASSWORDS=")]
        result["startup"] = {
            "rc": out.returncode,
            "passwords": json.loads(lines[-1].removeprefix("PASSWORDS=")) if lines else None,
            "error": (out.stderr.strip().splitlines() or [""])[-1],
        }
    return result


if __name__ == "__main__":
    case = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(main(case)))
