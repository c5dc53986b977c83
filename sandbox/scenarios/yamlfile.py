"""Reading a scenario file: UTF-8 bytes -> one YAML 1.2 document -> data, with the line of every field.

Scenario files are read with the YAML 1.2 core schema, as editors' YAML language servers read them:
only ``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` stay text), ``010`` is ten,
``1:30`` is text, and dates are text. PyYAML's default (YAML 1.1) would turn ``quality_gate: yes``
into a boolean that can never equal the tag MLflow stored.

Every problem is a ``YamlProblem`` with the line (when known), what is wrong, and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

Loc = tuple[str | int, ...]
# A file that declares this at its top level is a scenario file wherever it lives.
_MARKER = re.compile(r"^apiVersion[ \t]*:[ \t]*[\"']?mlops-sandbox/", re.MULTILINE)
_SNIFF_BYTES = 65536


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's implicit types (null, bool, int, float)."""

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # YAML 1.2: leading zeros are decimal, not octal


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class YamlProblem(Exception):
    """The file cannot be read as one YAML document: what is wrong, the fix, and the line if known."""

    def __init__(self, message: str, fix: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.line = line


@dataclass
class Document:
    """The file's data, and the line where each field (by its path) starts."""

    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    duplicates: list[tuple[Loc, int]] = field(default_factory=list)


def decode(raw: bytes) -> str:
    """The file's text; YamlProblem naming the byte, its offset and line when it is not UTF-8."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _not_utf8("it starts with a UTF-16 byte order mark", 1, "UTF-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return _not_utf8(
            f"byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line}, column {column}) "
            "is not valid UTF-8",
            line,
            "LATIN1",
        )


def _not_utf8(why: str, line: int, likely: str) -> NoReturn:
    raise YamlProblem(
        f"the file is not UTF-8 text: {why}",
        f"save it as UTF-8 (in an editor: 'save with encoding' UTF-8; or `iconv -f {likely} -t UTF-8 "
        "FILE > FILE.new`)",
        line,
    )


def read(path: Path) -> str:
    """The text of a scenario file; YamlProblem when it cannot be read or is not UTF-8."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise YamlProblem("no such file", "check the path") from exc
    except IsADirectoryError as exc:
        raise YamlProblem("is a folder, not a file", "name a .yaml file, or the folder to search") from exc
    except OSError as exc:
        raise YamlProblem(f"cannot read the file: {exc.strerror}", "check its permissions") from exc
    return decode(raw)


def parse(text: str) -> Document:
    """One YAML 1.2 document -> data with line numbers; YamlProblem with the line and the fix."""
    try:
        root = yaml.compose(text, Loader=Yaml12Loader)
        data = yaml.load(text, Loader=Yaml12Loader)
    except yaml.YAMLError as exc:
        raise _problem(exc, text) from exc
    doc = Document(data)
    if root is not None:
        _walk(root, (), doc)
    return doc


def _problem(exc: yaml.YAMLError, text: str) -> YamlProblem:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return YamlProblem(f"character {exc.character!r} is not allowed in YAML", "delete it", line)
    if isinstance(exc, yaml.composer.ComposerError) and "another document" in problem:
        return YamlProblem(
            "the file holds more than one YAML document (a second one starts at this '---')",
            "keep one scenario per file: delete the '---' line and what follows, or move it to its own file",
            line,
        )
    if "'\\t'" in problem:
        return YamlProblem(f"invalid YAML: {problem}", "indent with spaces, not tabs", line)
    return YamlProblem(
        f"invalid YAML: {problem}",
        "check indentation, and quote values that contain ': ' or start with '{', '[', '*', '&'",
        line,
    )


def _walk(node: yaml.Node, loc: Loc, doc: Document) -> None:
    doc.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            if k in seen:
                doc.duplicates.append(((*loc, k), key.start_mark.line + 1))
            seen.add(k)
            doc.lines[(*loc, k)] = key.start_mark.line + 1
            _walk(value, (*loc, k), doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), doc)


def declares_scenario(path: Path) -> bool:
    """Whether a file declares ``apiVersion: mlops-sandbox/...`` at its top level (how scenario
    files are recognised in a folder, whatever it is called)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    return bool(_MARKER.search(head.decode("utf-8", "replace")))
