"""The DAGs in ``dags/`` as Airflow itself parses them: ids, task ids and ``Param`` schemas.

Scenario files are validated against this registry at collection, before any stack starts. The
parse runs Airflow's DagBag in the platform env (``dag_dump.py``; the harness's own env has no
Airflow) with the local backend's deployment config, and its answer is cached by the content of the
DAG folder, the platform env and that config, so only the first collection after a DAG change pays
the few seconds of Airflow imports. A file that does not import lands in ``broken`` with Airflow's
own traceback (the runner then fails fast on the same import error).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import paths
from sandbox.errors import ConfigError

_PARAM_TYPES = {"number": (int, float), "integer": (int,), "string": (str,), "boolean": (bool,)}


@dataclass
class DagInfo:
    """One DAG as Airflow parsed it (``tasks``/``params`` None means unknown: not checked)."""

    dag_id: str
    file: Path
    tasks: list[str] | None = None
    params: dict[str, ParamInfo] | None = None


@dataclass
class ParamInfo:
    """A DAG param's default and JSON-schema constraints (what Airflow checks when a run is triggered)."""

    name: str
    default: Any = None
    types: list[str] = field(default_factory=list)
    schema: dict[str, Any] = field(default_factory=dict)

    def problem(self, value: Any) -> str | None:
        """Why Airflow would reject ``value`` for this param (None when it fits)."""
        if self.types and not self._type_ok(value):
            return f"is not of the param's type ({' or '.join(self.types)})"
        if isinstance(value, int | float) and not isinstance(value, bool):
            for key, bad, word in (
                ("minimum", lambda v, b: v < b, "below the minimum"),
                ("maximum", lambda v, b: v > b, "above the maximum"),
                ("exclusiveMinimum", lambda v, b: v <= b, "not above the exclusive minimum"),
                ("exclusiveMaximum", lambda v, b: v >= b, "not below the exclusive maximum"),
            ):
                bound = self.schema.get(key)
                if isinstance(bound, int | float) and bad(value, bound):
                    return f"is {word} {bound} of the param"
        min_length = self.schema.get("minLength")
        if isinstance(value, str) and isinstance(min_length, int) and len(value) < min_length:
            return f"is shorter than the param's minLength {min_length}"
        enum = self.schema.get("enum")
        if isinstance(enum, list) and value not in enum:
            return f"is not one of the param's values ({', '.join(map(str, enum))})"
        return None

    def accepts(self, value: Any) -> bool:
        return self.problem(value) is None

    def _type_ok(self, value: Any) -> bool:
        for t in self.types:
            if t == "null" and value is None:
                return True
            py = _PARAM_TYPES.get(t)
            if py is None:
                return True
            if isinstance(value, bool) and t != "boolean":
                continue
            if isinstance(value, py):
                return True
        return False


class DagRegistry(dict[str, DagInfo]):
    """DAG id -> DagInfo, plus ``broken``: files that do not import (file -> Airflow's traceback)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: dict[str, str] = {}


DUMP_SCRIPT = Path(__file__).with_name("dag_dump.py")
PARSE_TIMEOUT_S = 180.0


def parse_environment() -> dict[str, str]:
    """The deployment config the local backend's Airflow parses the DAGs with (charts + local overlay)."""
    from sandbox.backends.local.runtime import DEFAULT as TASK_RUNTIME
    from sandbox.platform.config import load_platform_config

    airflow = load_platform_config("local").airflow
    return {**airflow.config_env(), **airflow.deployment_env(), "MLOPS_TASK_RUNTIME": TASK_RUNTIME}


def _digest(root: Path, env_dir: Path, environment: Mapping[str, str]) -> str:
    digest = hashlib.sha256(f"{env_dir.name}\0{DUMP_SCRIPT.read_bytes().hex()}\0".encode())
    digest.update(json.dumps(dict(environment), sort_keys=True).encode())
    for file in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(f"\0{file.relative_to(root)}\0".encode() + file.read_bytes())
    return digest.hexdigest()[:24]


def _run_dump(root: Path, env_dir: Path, environment: Mapping[str, str], out: Path) -> None:
    home = paths.cache_root() / "dag-registry" / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
    env = {
        **{k: os.environ[k] for k in keep if k in os.environ},
        **environment,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    scale = float(os.environ.get("MLOPS_SANDBOX_TIMEOUT_SCALE", "1") or 1)
    argv = [str(env_dir / "bin" / "python"), str(DUMP_SCRIPT), str(root), str(out)]
    try:
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=PARSE_TIMEOUT_S * scale, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(
            f"Airflow did not finish parsing the DAGs in {root} within {PARSE_TIMEOUT_S * scale:.0f}s.",
            "Look for slow top-level code in the DAG files; on a slow machine set "
            "MLOPS_SANDBOX_TIMEOUT_SCALE=2.",
        ) from exc
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise ConfigError(
            f"Parsing the DAGs in {root} with Airflow failed (exit {proc.returncode}).",
            "Read Airflow's output below; the platform env may be damaged (delete it to rebuild it).",
            detail=tail,
        )


def _registry(root: Path, data: dict[str, Any]) -> DagRegistry:
    out = DagRegistry()
    out.broken = {str(root / f): trace for f, trace in data.get("import_errors", {}).items()}
    for dag_id, info in data.get("dags", {}).items():
        params: dict[str, ParamInfo] = {}
        for name, p in info.get("params", {}).items():
            schema = p.get("schema") or {}
            kind = schema.get("type")
            types = [kind] if isinstance(kind, str) else list(kind or [])
            params[name] = ParamInfo(name, p.get("default"), types, dict(schema))
        out[dag_id] = DagInfo(dag_id, root / info["file"], list(info.get("tasks", [])), params)
    return out


def scan(dags_dir: Path | None = None, *, environment: Mapping[str, str] | None = None) -> DagRegistry:
    """Every DAG under ``dags_dir`` (default: the project's ``dags/``), parsed by Airflow (cached)."""
    from sandbox.envs import ensure_platform_env

    root = (dags_dir or paths.DAGS_DIR).resolve()
    if not root.is_dir():
        return DagRegistry()
    env_dir = ensure_platform_env()
    environment = parse_environment() if environment is None else dict(environment)
    cache = paths.cache_root() / "dag-registry" / f"{_digest(root, env_dir, environment)}.json"
    try:
        return _registry(root, json.loads(cache.read_text()))
    except (OSError, ValueError, KeyError):
        pass
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
    try:
        _run_dump(root, env_dir, environment, tmp)
        data = json.loads(tmp.read_text())
        tmp.replace(cache)
    finally:
        tmp.unlink(missing_ok=True)
    return _registry(root, data)
