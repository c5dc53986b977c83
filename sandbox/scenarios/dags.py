"""A static registry of the DAGs in ``dags/``: ids, task ids and params, read with ``ast``.

Scenario files are validated against it at collection, before any stack starts, and without
importing Airflow (seconds of imports, and not installed in the harness's own env). What cannot be
read statically is left unknown (``None``) and then not checked here; the runner still fails fast
with Airflow's own answer.
"""

from __future__ import annotations

import ast
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import paths

_PARAM_TYPES = {"number": (int, float), "integer": (int,), "string": (str,), "boolean": (bool,)}


@dataclass
class DagInfo:
    """What a DAG file says about one DAG; ``tasks``/``params`` are None when not statically known."""

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


def _const(node: ast.AST | None, consts: dict[str, Any]) -> Any:
    """A literal value, following module-level NAME = literal assignments; raises ValueError otherwise."""
    if node is None:
        raise ValueError("no node")
    if isinstance(node, ast.Name) and node.id in consts:
        return consts[node.id]
    return ast.literal_eval(node)


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _parse_params(
    node: ast.expr | None, consts: dict[str, Any], nodes: dict[str, ast.expr]
) -> dict[str, ParamInfo] | None:
    if isinstance(node, ast.Name):
        node = nodes.get(node.id)
    if not isinstance(node, ast.Dict):
        return None
    out: dict[str, ParamInfo] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        try:
            name = _const(key, consts)
        except ValueError:
            return None
        info = ParamInfo(str(name))
        if isinstance(value, ast.Call) and _call_name(value) == "Param":
            try:
                info.default = _const(value.args[0] if value.args else _kw(value, "default"), consts)
            except (ValueError, IndexError):
                info.default = None
            try:
                t = _const(_kw(value, "type"), consts)
                info.types = [t] if isinstance(t, str) else list(t)
            except ValueError:
                info.types = []
            for kw in value.keywords:
                if kw.arg in (
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                    "minLength",
                    "enum",
                ):
                    with contextlib.suppress(ValueError):
                        info.schema[kw.arg] = _const(kw.value, consts)
        else:
            with contextlib.suppress(ValueError):
                info.default = _const(value, consts)
        out[info.name] = info
    return out


class DagRegistry(dict[str, DagInfo]):
    """DAG id -> DagInfo, plus ``broken``: files that do not even parse (file -> error)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: dict[str, str] = {}


def _step_classes(tree: ast.Module) -> set[str]:
    """Classes whose first field is ``task_id`` (step descriptions such as ``Step("train_model", ...)``)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            fields = [s for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
            if fields and isinstance(fields[0].target, ast.Name) and fields[0].target.id == "task_id":
                out.add(node.name)
    return out


def scan_file(
    path: Path, tree: ast.Module, step_classes: set[str] = frozenset()
) -> tuple[list[DagInfo], list[str]]:
    """DAGs defined in one file (``DAG(...)``, ``with DAG(...)``, ``@dag``) and the task ids it names."""
    consts: dict[str, Any] = {}
    nodes: dict[str, ast.expr] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            nodes[stmt.targets[0].id] = stmt.value
            with contextlib.suppress(ValueError):
                consts[stmt.targets[0].id] = ast.literal_eval(stmt.value)
    dags: list[DagInfo] = []
    task_ids: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if name in ("DAG", "dag"):
            try:
                dag_id = _const(node.args[0] if node.args else _kw(node, "dag_id"), consts)
            except (ValueError, IndexError):
                continue
            if isinstance(dag_id, str):
                dags.append(DagInfo(dag_id, path, params=_parse_params(_kw(node, "params"), consts, nodes)))
        tid = _kw(node, "task_id")
        if tid is None and name in step_classes and node.args:
            tid = node.args[0]
        if tid is not None:
            try:
                value = _const(tid, consts)
            except ValueError:
                continue
            if isinstance(value, str) and value not in task_ids:
                task_ids.append(value)
    return dags, task_ids


def scan(dags_dir: Path | None = None) -> DagRegistry:
    """All statically readable DAGs under ``dags_dir`` (default: the project's ``dags/``).

    Task ids come from ``task_id="..."`` and from step descriptions in helper modules; they are
    attributed to a DAG when the folder defines one DAG, or when its own file names them.
    """
    root = dags_dir or paths.DAGS_DIR
    out = DagRegistry()
    if not root.is_dir():
        return out
    trees: dict[Path, ast.Module] = {}
    for file in sorted(root.rglob("*.py")):
        if "__pycache__" in file.parts:
            continue
        try:
            trees[file] = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        except (SyntaxError, UnicodeDecodeError, OSError) as exc:
            out.broken[str(file)] = f"{type(exc).__name__}: {exc}"
    step_classes: set[str] = set()
    for tree in trees.values():
        step_classes |= _step_classes(tree)
    all_tasks: list[str] = []
    per_file: list[tuple[list[DagInfo], list[str]]] = []
    for file, tree in trees.items():
        dags, tasks = scan_file(file, tree, step_classes)
        per_file.append((dags, tasks))
        all_tasks += [t for t in tasks if t not in all_tasks]
    total = sum(len(d) for d, _ in per_file)
    for dags, tasks in per_file:
        for info in dags:
            if total == 1:
                info.tasks = all_tasks or None
            elif len(dags) == 1 and tasks:
                info.tasks = tasks
            out.setdefault(info.dag_id, info)
    return out
