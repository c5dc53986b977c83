"""How ``sandbox reproduce`` reaches production: endpoints and credentials.

Credentials come from environment variables, or from a file the user names (``--credentials``,
``KEY=VALUE`` lines with the same names; the file wins over the environment). They are held here
only, never printed, and ``secrets()`` lists them so every output can be checked for them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sandbox.errors import ConfigError

ENV_PREFIX = "MLOPS_REPRO_"
# Every variable a credentials file may set (docs/reproduce.md lists them with their meaning).
VARIABLES = (
    "MLOPS_REPRO_AIRFLOW_TOKEN",
    "MLOPS_REPRO_AIRFLOW_USERNAME",
    "MLOPS_REPRO_AIRFLOW_PASSWORD",
    "MLOPS_REPRO_MLFLOW_TOKEN",
    "MLOPS_REPRO_MLFLOW_USERNAME",
    "MLOPS_REPRO_MLFLOW_PASSWORD",
    "MLOPS_REPRO_S3_ACCESS_KEY_ID",
    "MLOPS_REPRO_S3_SECRET_ACCESS_KEY",
    "MLOPS_REPRO_S3_REGION",
)
_SECRET_VARIABLES = (
    "MLOPS_REPRO_AIRFLOW_TOKEN",
    "MLOPS_REPRO_AIRFLOW_PASSWORD",
    "MLOPS_REPRO_MLFLOW_TOKEN",
    "MLOPS_REPRO_MLFLOW_PASSWORD",
    "MLOPS_REPRO_S3_SECRET_ACCESS_KEY",
)
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Z0-9_]+)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True)
class Credentials:
    """Values by variable name; ``repr`` shows names only."""

    values: Mapping[str, str] = field(default_factory=dict, repr=False)
    origin: str = "environment"

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def secrets(self) -> list[tuple[str, str]]:
        """``(variable, value)`` of every secret set: what no output may contain."""
        return [(name, self.values[name]) for name in _SECRET_VARIABLES if self.values.get(name)]

    def secret_values(self) -> list[str]:
        return [value for _, value in self.secrets()]


def load_credentials(file: Path | None = None, environ: Mapping[str, str] | None = None) -> Credentials:
    """``MLOPS_REPRO_*`` from the environment, overridden by ``file`` when one is named."""
    env = os.environ if environ is None else environ
    values = {name: env[name].strip() for name in VARIABLES if env.get(name, "").strip()}
    origin = "environment"
    if file is not None:
        values.update(_read_file(Path(file)))
        origin = str(file)
    return Credentials(values, origin)


def _read_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Cannot read the credentials file {path}: {exc.__class__.__name__}.",
            "Name a readable file of KEY=VALUE lines (--credentials FILE).",
        ) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            # Never echo the line: it may hold a secret.
            raise ConfigError(
                f"{path}:{number}: not a KEY=VALUE line.",
                "Write one variable per line, e.g. MLOPS_REPRO_AIRFLOW_USERNAME=me; names: "
                + ", ".join(VARIABLES),
            )
        name, value = match.group(1), match.group(2)
        if name not in VARIABLES:
            raise ConfigError(
                f"{path}:{number}: unknown variable {name!r}.", f"Use some of: {', '.join(VARIABLES)}."
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if value:
            values[name] = value
    return values


def endpoint_url(url: str, what: str, option: str) -> str:
    """A production URL checked for shape; credentials inside it are refused (they would be printed)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{what} URL {url!r} is not an http(s) URL.", f"Give it as {option} https://host[:port][/path]."
        )
    if parts.username or parts.password:
        raise ConfigError(
            f"The {what} URL carries credentials; they would end up in the scenario and the output.",
            f"Give the URL without them ({option} {parts.scheme}://{parts.hostname}"
            f"{':' + str(parts.port) if parts.port else ''}{parts.path}) and set the credentials as "
            f"{ENV_PREFIX}* variables or in a --credentials file.",
        )
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class Production:
    """The production platform as ``sandbox reproduce`` reaches it (all reads)."""

    airflow_url: str
    credentials: Credentials
    mlflow_url: str | None = None
    s3_url: str | None = None
    data_bucket: str = "mlops-data"

    def airflow_auth(self) -> tuple[str, str, str]:
        """``(token, username, password)``: a token wins; else a username and password for /auth/token."""
        c = self.credentials
        token = c.get("MLOPS_REPRO_AIRFLOW_TOKEN")
        user, password = c.get("MLOPS_REPRO_AIRFLOW_USERNAME"), c.get("MLOPS_REPRO_AIRFLOW_PASSWORD")
        if not token and not (user and password):
            raise ConfigError(
                f"No credentials for production Airflow at {self.airflow_url} (looked in {c.origin}).",
                "Set MLOPS_REPRO_AIRFLOW_TOKEN, or MLOPS_REPRO_AIRFLOW_USERNAME and "
                "MLOPS_REPRO_AIRFLOW_PASSWORD (a read-only user is enough), in the environment or a "
                "--credentials file.",
            )
        return token, user, password
