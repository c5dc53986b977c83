"""Loading scenario files: YAML -> schema -> DAG-aware checks, every problem reported at once.

Each problem names the file (with its line), the field path and the fix, e.g.
``scenarios/x.yaml:12: expect.tasks.train_modl: unknown task id; fix: use one of preprocess_data, ...``.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sandbox.errors import ConfigError
from sandbox.scenarios import dags as dag_registry
from sandbox.scenarios import yamlfile
from sandbox.scenarios.model import (
    API_VERSION,
    COLLECT_PROBLEMS,
    ID_PATTERN,
    MAX_RUNS,
    RESERVED_CONF,
    TAG_PREFIX,
    Scenario,
    ServiceFault,
    TaskPoint,
)

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    """One problem in one scenario file."""

    file: str
    path: str
    message: str
    fix: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text}; fix: {self.fix}" if self.fix else text


class ScenarioLoadError(ConfigError):
    """One or more scenario files are invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        files = sorted({i.file for i in issues})
        super().__init__(
            f"{len(issues)} problem(s) in scenario file(s) {', '.join(files)}:",
            "edit the file(s) as each line says; the reference is docs/scenarios.md",
            detail="\n".join(f"  {i}" for i in issues),
        )


@dataclass(frozen=True)
class LoadedScenario:
    """A valid scenario and where it came from."""

    scenario: Scenario
    path: Path

    @property
    def display_path(self) -> str:
        return _display(self.path)


def _display(path: Path) -> str:
    """The path relative to the working directory when it is inside it, else absolute."""
    absolute = Path(path).absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _fmt_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# --- field paths and lines ------------------------------------------------------------------


def _line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


# --- pydantic errors -> issues ------------------------------------------------------------------


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _resolve(annotation: Any) -> Any:
    """Strip Annotated/Optional/unions down to the first model, dict or list member."""
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in map(_strip, typing.get_args(annotation)):
            if (isinstance(arg, type) and issubclass(arg, BaseModel)) or typing.get_origin(arg) in (
                dict,
                list,
            ):
                return arg
        return None
    return annotation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class whose field ``loc[-1]`` would be (for listing its allowed fields)."""
    current: Any = Scenario
    for part in loc[:-1]:
        current = _resolve(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return None
    current = _resolve(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


_TYPE_NAMES = {
    "int_type": "a whole number",
    "float_type": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "list_type": "a list ('- item' lines or [a, b])",
}


def _type_issue(kind: str, value: Any) -> tuple[str, str]:
    """Message and fix for a value of the wrong type (strict: nothing is converted)."""
    want = _TYPE_NAMES[kind]
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    message = f"expected {want}, got {_yaml_type(value)} {shown}"
    if isinstance(value, str) and kind in ("int_type", "float_type"):
        try:
            float(value)
        except ValueError:
            return message, f"give {want}"
        return message, f"write the number without quotes: {value.strip()}"
    if isinstance(value, bool) and kind in ("int_type", "float_type"):
        return message, f"true/false is not a number here; give {want}"
    if kind == "string_type" and isinstance(value, bool | int | float):
        written = str(value).lower() if isinstance(value, bool) else value
        return message, f"quote it to make it text ('{written}')"
    if kind == "int_type" and isinstance(value, float):
        return message, f"write a whole number (e.g. {int(value)})"
    return message, f"give {want}"


def _yaml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "the boolean"
    return {int: "the number", float: "the number", str: "the text", dict: "a mapping", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _issue_from_error(err: Any, file: str, lines: dict[Loc, int]) -> Issue:
    raw_loc: Loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(TAG_PREFIX)))
    at_key = bool(raw_loc) and raw_loc[-1] == "[key]"
    loc = raw_loc[:-1] if at_key else raw_loc
    path = _fmt_loc(loc)
    kind = err["type"]
    value = err.get("input")
    line = _line_of(lines, loc)
    if kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = _field_names(model) if model else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return Issue(file, path, "unknown field", f"{hint}allowed here: {', '.join(allowed)}", line)
    if kind == "missing":
        return Issue(file, path, "required field is missing", f"add '{loc[-1]}:'", line)
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        if loc == ("apiVersion",):
            return Issue(
                file, path, f"unsupported version {value!r}", f"use 'apiVersion: {API_VERSION}'", line
            )
        return Issue(file, path, f"{value!r} is not allowed", f"use one of {expected}", line)
    if kind == "value_error":
        msg = str(err["msg"]).removeprefix("Value error, ")
        message, _, fix = msg.partition("; fix: ")
        return Issue(file, path, message, fix, line)
    if kind == "string_pattern_mismatch":
        if err.get("ctx", {}).get("pattern") == ID_PATTERN:
            what = "key" if at_key else "value"
            return Issue(
                file, path, f"{value!r} is not a valid Airflow id ({what})",
                "use only letters, digits, '_', '.' and '-'", line,
            )  # fmt: skip
        return Issue(file, path, "the text is blank", "write the text (or delete the line)", line)
    if kind in _TYPE_NAMES:
        message, fix = _type_issue(kind, value)
        if at_key:
            message = f"keys here are text; {message}"
        return Issue(file, path, message, fix, line)
    if kind == "less_than_equal" and loc == ("runs",):
        return Issue(
            file, path, f"{value} runs; a scenario has at most {MAX_RUNS}",
            f"split it into scenarios of at most {MAX_RUNS} runs each", line,
        )  # fmt: skip
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return Issue(
            file, path, f"{err['msg'].lower()}, got {value!r}", "change the value to fit that bound", line
        )
    if kind == "too_long" and loc == ("runs",):
        return Issue(
            file, path, f"{len(value)} runs; a scenario has at most {MAX_RUNS}",
            f"split it into scenarios of at most {MAX_RUNS} runs each", line,
        )  # fmt: skip
    if kind == "too_short" and loc == ("runs",):
        return Issue(
            file, path, "an empty list of runs runs nothing (and would pass)",
            "give at least one run ('- expect: ...'), or remove 'runs:' for one run", line,
        )  # fmt: skip
    if kind in ("too_short", "string_too_short"):
        return Issue(file, path, f"{err['msg'].lower()}", "give at least one item or character", line)
    return Issue(file, path, str(err["msg"]), "see docs/scenarios.md", line)


# --- DAG-aware checks ---------------------------------------------------------------------------


def _dag_issues(sc: Scenario, file: str, lines: dict[Loc, int], registry: dict[str, Any]) -> list[Issue]:
    issues: list[Issue] = []

    def add(loc: Loc, message: str, fix: str) -> None:
        issues.append(Issue(file, _fmt_loc(loc), message, fix, _line_of(lines, loc)))

    info = registry.get(sc.dag)
    if info is None:
        # A DAG file that does not parse may be the one defining this DAG: leave the verdict to the
        # run, which fails fast with Airflow's own import error instead of a misleading "unknown".
        if registry and not getattr(registry, "broken", None):
            close = difflib.get_close_matches(sc.dag, list(registry), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            add(("dag",), f"unknown DAG id {sc.dag!r}", f"{hint}use one of {', '.join(sorted(registry))}")
        return issues
    tasks: list[str] | None = info.tasks
    params = info.params

    def check_task(loc: Loc, task_id: str) -> None:
        if tasks is not None and task_id not in tasks:
            close = difflib.get_close_matches(task_id, tasks, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            add(loc, f"unknown task id {task_id!r} in DAG {sc.dag!r}", f"{hint}use one of {', '.join(tasks)}")

    def check_conf(loc: Loc, conf: dict[str, Any]) -> None:
        for key, value in conf.items():
            if key in RESERVED_CONF:
                continue  # reported by Scenario.problems()
            if params is not None and key not in params:
                close = difflib.get_close_matches(key, list(params), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                allowed = [p for p in params if p not in RESERVED_CONF]
                add((*loc, key), f"unknown param of DAG {sc.dag!r}", f"{hint}use one of {', '.join(allowed)}")
                continue
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                add(
                    (*loc, key),
                    f"{value!r} is not a JSON value",
                    "quote it (YAML read it as a date or similar)",
                )
                continue
            problem = params[key].problem(value) if params is not None else None
            if problem:
                info_ = params[key]  # type: ignore[index]
                hint = " or ".join(info_.types) or "valid"
                add(
                    (*loc, key),
                    f"{value!r} {problem}",
                    f"give a value of type {hint} that the DAG accepts (default {info_.default!r})",
                )

    def check_expect(loc: Loc, exp: Any) -> None:
        if exp is None:
            return
        for task_id in exp.tasks:
            check_task((*loc, "tasks", task_id), task_id)
        for task_id in exp.log_contains:
            check_task((*loc, "log_contains", task_id), task_id)

    def check_faults(loc: Loc, faults: list[Any]) -> None:
        for i, fault in enumerate(faults):
            if isinstance(fault, ServiceFault):
                if isinstance(fault.at, TaskPoint):
                    check_task((*loc, i, "at", "task"), fault.at.task)
                if fault.restore is not None and fault.restore.at is not None:
                    check_task((*loc, i, "restore", "at", "task"), fault.restore.at.task)
            else:
                check_task((*loc, i, "task"), fault.task)

    check_conf(("conf",), sc.conf)
    check_faults(("faults",), sc.faults)
    check_expect(("expect",), sc.expect)
    if isinstance(sc.runs, list):
        for i, run in enumerate(sc.runs):
            check_conf(("runs", i, "conf"), run.conf)
            check_faults(("runs", i, "faults"), run.faults)
            check_expect(("runs", i, "expect"), run.expect)
    return issues


# --- public API ---------------------------------------------------------------------------------


def parse(
    text: str, path: Path, *, dags_dir: Path | None = None, registry: dict[str, Any] | None = None
) -> tuple[Scenario | None, list[Issue]]:
    """Validate one scenario's text; returns the scenario (None if invalid) and all issues found."""
    file = _display(path)
    try:
        doc = yamlfile.parse(text)
    except yamlfile.YamlProblem as exc:
        return None, [Issue(file, "", exc.message, exc.fix, exc.line)]
    data = doc.data
    if data is None:
        return None, [
            Issue(file, "", "file is empty", f"start with 'apiVersion: {API_VERSION}' and 'name:'", 1)
        ]
    if not isinstance(data, dict):
        return None, [
            Issue(
                file,
                "",
                f"top level is a {type(data).__name__}, not a mapping",
                f"write 'key: value' lines, starting with 'apiVersion: {API_VERSION}'",
                doc.lines.get((), 1),
            )
        ]
    issues = [
        Issue(file, _fmt_loc(loc), "duplicate key", "keep one of them (YAML keeps only the last)", line)
        for loc, line in doc.duplicates
    ]
    try:
        scenario = Scenario.model_validate(data, context={COLLECT_PROBLEMS: True})
    except ValidationError as exc:
        issues += [_issue_from_error(e, file, doc.lines) for e in exc.errors()]
        return None, issues
    issues += [
        Issue(file, _fmt_loc(p.loc), p.message, p.fix, _line_of(doc.lines, p.loc))
        for p in scenario.problems()
    ]
    reg = registry if registry is not None else dag_registry.scan(dags_dir)
    issues += _dag_issues(scenario, file, doc.lines, reg)
    return (None if issues else scenario), issues


def load(
    path: Path, *, dags_dir: Path | None = None, registry: dict[str, Any] | None = None
) -> LoadedScenario:
    """Load one scenario file or raise ScenarioLoadError listing every problem in it."""
    try:
        text = yamlfile.read(path)
    except yamlfile.YamlProblem as exc:
        raise ScenarioLoadError([Issue(_display(path), "", exc.message, exc.fix, exc.line)]) from exc
    scenario, issues = parse(text, Path(path), dags_dir=dags_dir, registry=registry)
    if issues or scenario is None:
        raise ScenarioLoadError(issues)
    return LoadedScenario(scenario, Path(path))


def is_scenario_file(path: Path) -> bool:
    """A ``.yaml``/``.yml`` file that declares ``apiVersion: mlops-sandbox/...`` at its top level."""
    return path.suffix in (".yaml", ".yml") and path.is_file() and yamlfile.declares_scenario(path)


def discover(root: Path) -> list[Path]:
    """Scenario files: ``root`` itself when it is a YAML file (named, so taken as a scenario), else every
    file under it that declares ``apiVersion: mlops-sandbox/...``, sorted. Other YAML is left alone."""
    if root.is_file():
        return [root] if root.suffix in (".yaml", ".yml") else []
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if is_scenario_file(p))


def load_all(paths: Iterable[Path], *, dags_dir: Path | None = None) -> list[LoadedScenario]:
    """Load many files; raise one ScenarioLoadError listing the problems of all of them."""
    registry = dag_registry.scan(dags_dir)
    loaded: list[LoadedScenario] = []
    issues: list[Issue] = []
    for path in paths:
        try:
            loaded.append(load(path, registry=registry))
        except ScenarioLoadError as exc:
            issues += exc.issues
    if issues:
        raise ScenarioLoadError(issues)
    return loaded
