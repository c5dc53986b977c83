"""Comparisons (``">= 0.9"``, ``"== 100"``, ``"0.8..0.95"``) and the check of a run's expectations.

Comparisons are parsed when a scenario loads, so an impossible one is a load error, not a late surprise.
Checking never stops at the first mismatch: every mismatch of a run is returned with expected vs actual.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sandbox.scenarios.model import Expect
    from sandbox.scenarios.observations import RunObservation

_OPS = ("==", "!=", ">=", "<=", ">", "<")
_ORDERED = {">=", "<=", ">", "<"}
_OPS_RE = "|".join(re.escape(op) for op in _OPS)
_OP_RE = re.compile(rf"^\s*({_OPS_RE})\s*(.*?)\s*$", re.S)
# Strings that look like an attempt at an operator (e.g. "=> 0.9", "=0.9") must not silently
# become a string equality that can never match.
_OPERATOR_LIKE = re.compile(r"^\s*[<>=!~]")

ComparisonKind = Literal["value", "number", "count"]
"""What a comparison is about, which decides what may be written:

- ``value``: a param or tag (text in MLflow): text, a number, a boolean or null (absent), an
  operator with any text (``== x``, ``!= x``) or a number (``>= 0.9``), or a numeric range;
- ``number``: a metric: a number or null (absent), an operator with a number, or a range;
- ``count``: how many of something: a whole number >= 0, an operator with one, or a range of them.
"""
# Operand grammar per kind: the parser below and the exported JSON schema share these.
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_OPERAND: dict[str, str] = {"value": _NUM, "number": _NUM, "count": r"\d+"}
_WHAT = {"number": "a metric is a number", "count": "a count is a whole number >= 0"}
_EXAMPLE = {"value": "'>= 0.9', '== 100' or '0.8..0.95'", "number": "0.9, '>= 0.9' or '0.8..0.95'",
            "count": "2, '>= 1' or '1..3'"}  # fmt: skip


def string_pattern(kind: ComparisonKind) -> str:
    """The regular expression (JSON Schema ``pattern``) of a valid comparison string of ``kind``."""
    num = _OPERAND[kind]
    forms = [rf"^\s*{num}\s*\.\.\s*{num}\s*$", rf"^\s*(?:{_OPS_RE})\s*{num}\s*$"]
    if kind == "value":
        # Text equality: no '..' anywhere (that is a range), and not an operator-like start.
        forms.append(r"^(?![\s\S]*\.\.)\s*(?:==|!=)\s*\S[\s\S]*$")
        forms.append(r"^(?![\s\S]*\.\.)(?!\s*[<>=!~])\s*\S[\s\S]*$")
    return "|".join(f"(?:{f})" for f in forms)


def comparison_json_schema(kind: ComparisonKind) -> dict[str, Any]:
    """JSON Schema of a comparison of ``kind`` (what ``Comparison.parse`` accepts)."""
    text = {"type": "string", "pattern": string_pattern(kind)}
    if kind == "count":
        return {"anyOf": [{"type": "integer", "minimum": 0}, text]}
    if kind == "number":
        return {"anyOf": [{"type": "number"}, text, {"type": "null"}]}
    return {"anyOf": [text, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}


class ComparisonError(ValueError):
    """An impossible comparison; the message says why and how to write it."""


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _operand(text: str, kind: ComparisonKind) -> float | None:
    """``text`` as the kind's number (finite; whole for counts), None when it is not one."""
    if not re.fullmatch(_OPERAND[kind], text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Comparison:
    """One parsed comparison. ``op`` is an operator, ``range`` or ``absent``."""

    op: str
    operand: Any = None
    high: float | None = None
    text: str = ""

    @classmethod
    def parse(cls, raw: Any, kind: ComparisonKind = "value") -> Comparison:
        """Parse a YAML value of ``kind``: a plain value means equality, ``null`` means absent."""
        if isinstance(raw, Comparison):
            return raw
        example = _EXAMPLE[kind]
        if raw is None:
            if kind == "count":
                raise ComparisonError(f"null is not a count; fix: write e.g. {example}")
            return cls("absent", text="null (absent)")
        if isinstance(raw, bool):
            if kind != "value":
                raise ComparisonError(
                    f"{_WHAT[kind]}, got the boolean {str(raw).lower()}; fix: write e.g. {example}"
                )
            return cls("==", raw, text=f"== {str(raw).lower()}")
        if isinstance(raw, int | float):
            if isinstance(raw, float) and not math.isfinite(raw):
                raise ComparisonError(f"{raw!r} is not a finite number; fix: write a finite number")
            if kind == "count" and (isinstance(raw, float) or raw < 0):
                raise ComparisonError(f"{_WHAT['count']}, got {raw!r}; fix: write e.g. {example}")
            return cls("==", raw, text=f"== {_fmt(raw)}")
        if not isinstance(raw, str):
            raise ComparisonError(
                f"a comparison must be a string, number, boolean or null, got {type(raw).__name__}; "
                f"fix: write e.g. {example}"
            )
        text = raw.strip()
        if not text:
            raise ComparisonError(f"empty comparison; fix: write e.g. {example}")
        noun = "whole number" if kind == "count" else "number"
        if ".." in text:
            m = re.fullmatch(rf"\s*({_OPERAND[kind]})\s*\.\.\s*({_OPERAND[kind]})\s*", text)
            lo, hi = (_operand(m.group(1), kind), _operand(m.group(2), kind)) if m else (None, None)
            if m is None or lo is None or hi is None:
                raise ComparisonError(
                    f"{raw!r} is not a range of {noun}s; fix: write 'LOW..HIGH' with two {noun}s, "
                    f"e.g. '{'1..3' if kind == 'count' else '0.8..0.95'}'"
                )
            if lo > hi:
                raise ComparisonError(
                    f"range {raw!r} is empty (low {_fmt(lo)} > high {_fmt(hi)}); "
                    f"fix: write it as '{m.group(2)}..{m.group(1)}'"
                )
            return cls("range", lo, hi, text=f"{_fmt(lo)}..{_fmt(hi)}")
        m = _OP_RE.match(text)
        if m:
            op, operand_text = m.group(1), m.group(2)
            if not operand_text:
                raise ComparisonError(f"{raw!r} has no value after {op!r}; fix: write e.g. '{op} 0.9'")
            if kind == "value" and op not in _ORDERED:
                return cls(op, operand_text, text=f"{op} {operand_text}")
            number = _operand(operand_text, kind)
            if number is None:
                raise ComparisonError(
                    f"{raw!r}: {op} needs a {noun}, got {operand_text!r}; "
                    f"fix: write e.g. '{op} {'2' if kind == 'count' else '0.9'}'"
                )
            return cls(op, number, text=f"{op} {_fmt(number)}")
        if _OPERATOR_LIKE.match(text):
            raise ComparisonError(
                f"{raw!r} starts with an unknown operator; fix: use one of {', '.join(_OPS)} or 'LOW..HIGH'"
            )
        if kind != "value":
            raise ComparisonError(
                f"{_WHAT[kind]}, got the text {raw!r}; fix: write e.g. {example} "
                "(a number unquoted, or an operator and a number)"
            )
        return cls("==", text, text=f"== {text}")

    def matches(self, actual: Any) -> bool:
        """Whether ``actual`` (a metric float, or a param/tag string; None when absent) satisfies it."""
        if self.op == "absent":
            return actual is None
        if actual is None:
            return self.op == "!="
        if self.op == "range":
            n = _as_number(actual)
            return n is not None and self.operand <= n <= (self.high or 0.0)
        if self.op in _ORDERED:
            n = _as_number(actual)
            if n is None:
                return False
            return {
                ">=": n >= self.operand,
                "<=": n <= self.operand,
                ">": n > self.operand,
                "<": n < self.operand,
            }[self.op]
        equal = _equal(self.operand, actual)
        return equal if self.op == "==" else not equal

    def __str__(self) -> str:
        return self.text or self.op


def _equal(expected: Any, actual: Any) -> bool:
    """Equality that treats MLflow's stringly params/tags sensibly: "100" == 100, "true" == True."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(expected).lower() == str(actual).lower()
    a, b = _as_number(expected), _as_number(actual)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return str(expected) == str(actual)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Mismatch:
    """One expectation the run did not meet."""

    path: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, got {self.actual}"


def _show(value: Any) -> str:
    if value is None:
        return "nothing (absent)"
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value) if isinstance(value, str) else str(value)


def check(expect: Expect, obs: RunObservation, prefix: str = "expect") -> list[Mismatch]:
    """Every mismatch between ``expect`` and what was observed for one DAG run."""
    out: list[Mismatch] = []

    def cmp(path: str, comparison: Comparison, actual: Any) -> None:
        if not comparison.matches(actual):
            out.append(Mismatch(f"{prefix}.{path}", str(comparison), _show(actual)))

    if expect.dag_run is not None and obs.state != expect.dag_run:
        out.append(Mismatch(f"{prefix}.dag_run", expect.dag_run, _show(obs.state)))

    for task_id, texp in expect.task_expectations().items():
        task = obs.tasks.get(task_id)
        state = task.state if task else None
        if texp.state is not None and (state or "none") != texp.state:
            out.append(Mismatch(f"{prefix}.tasks.{task_id}.state", texp.state, _show(state)))
        if texp.try_number is not None:
            cmp(f"tasks.{task_id}.try_number", texp.try_number, task.try_number if task else None)

    if expect.mlflow is not None:
        m = expect.mlflow
        if m.runs is not None:
            cmp("mlflow.runs", m.runs, len(obs.mlflow_runs))
        metrics, params, tags = obs.metrics(), obs.params(), obs.tags()
        for name, c in m.metrics.items():
            cmp(f"mlflow.metrics.{name}", c, metrics.get(name))
        for name, c in m.params.items():
            cmp(f"mlflow.params.{name}", c, params.get(name))
        for name, c in m.tags.items():
            cmp(f"mlflow.tags.{name}", c, tags.get(name))
        if m.registry is not None:
            out.extend(_check_registry(m.registry, obs, f"{prefix}.mlflow.registry"))
        if m.artifacts is not None:
            out.extend(_check_artifacts(m.artifacts, obs, f"{prefix}.mlflow.artifacts"))

    if expect.s3 is not None:
        present = set(obs.s3_objects)
        for key in expect.s3.objects:
            if key not in present:
                listing = ", ".join(sorted(present)) or "no objects"
                out.append(Mismatch(f"{prefix}.s3.objects", f"{key!r} present", f"missing ({listing})"))
        if expect.s3.count is not None:
            cmp("s3.count", expect.s3.count, len(obs.s3_objects))

    if expect.overlapping_tries is not None:
        pairs = obs.overlapping_tries()
        if not expect.overlapping_tries.matches(len(pairs)):
            shown = f"{len(pairs)} ({'; '.join(pairs)})" if pairs else "0"
            out.append(Mismatch(f"{prefix}.overlapping_tries", str(expect.overlapping_tries), shown))

    for task_id, texts in expect.log_contains.items():
        log = obs.logs.get(task_id, "")
        for text in [texts] if isinstance(texts, str) else texts:
            if text not in log:
                tail = log.strip().splitlines()[-3:] if log.strip() else []
                got = f"not found; log tail: {' | '.join(tail)}" if tail else "no log text"
                out.append(Mismatch(f"{prefix}.log_contains.{task_id}", f"text {text!r}", got))
    return out


def _check_registry(reg: Any, obs: RunObservation, path: str) -> list[Mismatch]:
    out: list[Mismatch] = []
    registry = obs.registry
    versions = registry.versions if registry else []
    if reg.versions is not None and not reg.versions.matches(len(versions)):
        out.append(Mismatch(f"{path}.versions", str(reg.versions), str(len(versions))))
    aliases = registry.aliases if registry else {}
    own_numbers = sorted(int(v.version) for v in obs.own_versions())
    for alias, want in reg.aliases.items():
        got = aliases.get(alias)
        if want == "this_run":
            if got is None or got not in own_numbers:
                mine = f"version {own_numbers[0]}" if own_numbers else "none registered"
                out.append(
                    Mismatch(
                        f"{path}.aliases.{alias}",
                        f"the version this run registered ({mine})",
                        "no alias" if got is None else f"version {got}",
                    )
                )
        elif got != want:
            out.append(
                Mismatch(
                    f"{path}.aliases.{alias}",
                    "no alias" if want is None else f"version {want}",
                    "no alias" if got is None else f"version {got}",
                )
            )
    if reg.version_tags:
        own = obs.own_versions()
        if not own:
            for tag, c in reg.version_tags.items():
                out.append(
                    Mismatch(f"{path}.version_tags.{tag}", str(c), "no version registered by this run")
                )
        else:
            version = max(own, key=lambda v: v.version)
            for tag, c in reg.version_tags.items():
                got = version.tags.get(tag)
                if not c.matches(got):
                    out.append(
                        Mismatch(
                            f"{path}.version_tags.{tag}", str(c), f"{_show(got)} (version {version.version})"
                        )
                    )
    return out


PROXIED_SCHEME = "mlflow-artifacts:"


def _check_artifacts(exp: Any, obs: RunObservation, path: str) -> list[Mismatch]:
    out: list[Mismatch] = []
    own = obs.own_versions()
    if exp.proxied is not None:
        want = "proxied by the tracking server (mlflow-artifacts:/...)" if exp.proxied else "not proxied"
        locations = [(f"run {r.run_id}", r.artifact_uri) for r in obs.mlflow_runs]
        locations += [(f"model version {v.version}", v.artifact_location) for v in own]
        if not obs.mlflow_runs:
            out.append(Mismatch(f"{path}.proxied", want, "no MLflow run logged by this DAG run"))
        for what, uri in locations:
            if uri.startswith(PROXIED_SCHEME) != exp.proxied:
                out.append(Mismatch(f"{path}.proxied", f"{what} {want}", f"{what} at {uri or 'no location'}"))
    if exp.model_files:
        if not own:
            out.append(Mismatch(f"{path}.model_files", "files of this run's model version",
                                "no version registered by this run"))  # fmt: skip
            return out
        version = max(own, key=lambda v: v.version)
        where = f"version {version.version} at {version.artifact_location or 'no location'}"
        if version.artifact_files is None:
            out.append(Mismatch(f"{path}.model_files", "the model's files in the artifact bucket",
                                f"{where}, which is not in the artifact bucket"))  # fmt: skip
            return out
        found = set(version.artifact_files)
        for name in exp.model_files:
            if name not in found:
                listing = ", ".join(sorted(found)[:10]) or "nothing"
                out.append(Mismatch(f"{path}.model_files", f"{name!r} in the artifact bucket",
                                    f"missing under {where} (found: {listing})"))  # fmt: skip
    return out
