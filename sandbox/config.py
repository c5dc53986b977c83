"""Harness settings: one validated model from ``[tool.mlops-sandbox]`` in pyproject.toml, then
``MLOPS_SANDBOX_*`` environment variables, then CLI flags (later wins)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox import paths
from sandbox.errors import ConfigError

_ENV = {"name": "MLOPS_SANDBOX_NAME", "backend": "MLOPS_SANDBOX_BACKEND"}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("default", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
    backend: Literal["local", "kind"] = "local"


def load_settings(pyproject: Path | None = None, **overrides: Any) -> Settings:
    """Merge file, environment and explicit overrides (None values are ignored)."""
    pyproject = pyproject or paths.PROJECT_ROOT / "pyproject.toml"
    values: dict[str, Any] = {}
    source = "defaults"
    try:
        if pyproject.is_file():
            values.update(tomllib.loads(pyproject.read_text()).get("tool", {}).get("mlops-sandbox", {}))
            source = f"[tool.mlops-sandbox] in {pyproject}"
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject} is not valid TOML: {exc}.", "Fix the file's syntax.") from exc
    for key, var in _ENV.items():
        if os.environ.get(var):
            values[key] = os.environ[var]
            source = f"${var}"
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        raise ConfigError(
            f"Invalid setting {field}={err.get('input')!r}: {err['msg']} (from {source} or a flag).",
            "Names use letters, digits, '_', '.', '-' (up to 63); backends are 'local' or 'kind'.",
        ) from exc
