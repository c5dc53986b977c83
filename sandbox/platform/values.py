"""Charts' values files with Helm's semantics: ``values.yaml`` plus one overlay, restricted by
``charts/overlay-keys.yaml``.

Merging follows ``helm --values a --values b``: maps merge key by key, anything else (lists
included) is replaced whole, and ``null`` in the overlay deletes the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import ConfigError
from sandbox.paths import CHARTS_DIR

OVERLAY_KEYS_FILE = "overlay-keys.yaml"
# libyaml when the wheel has it: every `up` (and `status`) reads a dozen values files.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base`` as Helm coalesces values files (inputs are not modified)."""
    out = dict(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value for every leaf (a list is a leaf: overlays replace lists whole)."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree} if prefix else {}


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """Dotted keys whose value differs (added, removed or changed)."""
    a, b = leaves(before), leaves(after)
    missing = object()
    return {k for k in a.keys() | b.keys() if a.get(k, missing) != b.get(k, missing)}


def covered(key: str, allowed: list[str]) -> bool:
    """Whether ``key`` is one of ``allowed`` or below one of them."""
    return any(key == a or key.startswith(a + ".") for a in allowed)


def read_yaml(path: Path) -> dict[str, Any]:
    """One chart YAML file (values, Chart.yaml) as a mapping; ConfigError naming the file and line."""
    try:
        data = yaml.load(path.read_text(), Loader=_LOADER)  # a safe loader
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.", "Restore it from git.") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(
            f"{where} is not valid YAML: {getattr(exc, 'problem', exc)}.", "Fix the file's syntax."
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of values, not a {type(data).__name__}.",
                          "Write `key: value` lines (an empty overlay is `{}`).")  # fmt: skip
    return data


def overlay_keys(charts_dir: Path = CHARTS_DIR) -> dict[str, dict[str, list[str]]]:
    """chart -> overlay -> dotted keys that overlay may set."""
    path = charts_dir / OVERLAY_KEYS_FILE
    data = read_yaml(path)
    out: dict[str, dict[str, list[str]]] = {}
    for chart, overlays in data.items():
        if not isinstance(overlays, dict) or not all(isinstance(v, list) for v in overlays.values()):
            raise ConfigError(f"{path}: `{chart}` must map overlay names to lists of dotted keys.",
                              "e.g. `mlflow: {local: [workers]}`.")  # fmt: skip
        out[str(chart)] = {str(k): [str(x) for x in v] for k, v in overlays.items()}
    return out


@dataclass(frozen=True)
class ChartValues:
    """One chart's merged values and the files they came from (for error messages)."""

    chart: str
    values: dict[str, Any]
    files: tuple[Path, ...]

    def source(self, key: str) -> str:
        """Where a dotted key is set, for messages: the last file that sets it."""
        for path in reversed(self.files):
            keys = leaves(read_yaml(path))
            if key in keys or any(k.startswith(key + ".") for k in keys):
                return f"{path} `{key}`"
        return f"{self.files[0]} `{key}`"


def load(
    chart: str,
    overlay: str | None = None,
    charts_dir: Path = CHARTS_DIR,
    allow_list: dict[str, dict[str, list[str]]] | None = None,
) -> ChartValues:
    """``charts/<chart>/values.yaml`` plus ``values-<overlay>.yaml``; ConfigError when the overlay
    sets a key ``overlay-keys.yaml`` (or ``allow_list``, read from it) does not allow for it (a missing
    overlay file is empty)."""
    base_file = charts_dir / chart / "values.yaml"
    base = read_yaml(base_file)
    if overlay is None:
        return ChartValues(chart, base, (base_file,))
    overlay_file = charts_dir / chart / f"values-{overlay}.yaml"
    if not overlay_file.exists():
        return ChartValues(chart, base, (base_file,))
    merged = merge(base, read_yaml(overlay_file))
    allowed = (allow_list if allow_list is not None else overlay_keys(charts_dir)).get(chart, {}).get(overlay)
    if allowed is None:
        raise ConfigError(
            f"{overlay_file} exists, but {charts_dir / OVERLAY_KEYS_FILE} lists no `{overlay}` keys "
            f"for {chart}.",
            f"Add `{chart}: {{{overlay}: [...]}}` with the keys the overlay may change, or delete the file.",
        )
    bad = sorted(k for k in changed_keys(base, merged) if not covered(k, allowed))
    if bad:
        raise ConfigError(
            f"{overlay_file} changes {', '.join(f'`{k}`' for k in bad)}, which "
            f"{charts_dir / OVERLAY_KEYS_FILE} does not allow for the `{overlay}` overlay "
            f"(allowed: {', '.join(allowed) or 'nothing'}).",
            "Change production values.yaml instead, or add the key to overlay-keys.yaml with a comment "
            "on why only this overlay differs.",
        )
    return ChartValues(chart, merged, (base_file, overlay_file))
