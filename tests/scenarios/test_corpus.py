"""The scenario-file corpus: every bad file is rejected by the loader (file, line, field path, fix)
AND by the exported JSON schema, unless the file names one of the documented exceptions below;
every good file (the corpus's and the built-in ``scenarios/``) is accepted by both.

Each bad file starts with a header saying what it is and the error it must give::

    # <what is wrong>
    # error-path: expect.mlflow.metrics.accuracy      ((file) for a file-level problem)
    # error: <fragment of the message>
    # fix: <fragment of the fix>
    # schema-exception: <name>                        (only where the schema cannot agree)
    # line: <line the error points at>
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from sandbox import paths
from sandbox.scenarios import yamlfile
from sandbox.scenarios.loader import ScenarioLoadError, discover, load
from sandbox.scenarios.model import RULES_LOADER_ONLY

CORPUS = Path(__file__).with_name("corpus")
BAD = sorted((CORPUS / "bad").glob("*.yaml"))
GOOD = sorted((CORPUS / "good").glob("*.yaml"))
SCHEMA = json.loads((paths.SCENARIOS_DIR / "schema.json").read_text())

# Where the JSON schema cannot reject what the loader rejects, and why (also in docs/scenarios.md).
EXCEPTIONS: dict[str, str] = {
    "dag-aware": "needs the DAG (its id, task ids and params): the schema does not know the DAG folder",
    "not-one-yaml-document": "the file is not one YAML document in UTF-8: there is nothing to validate",
    "empty-range": "a range whose low end is above its high end: a pattern cannot compare two numbers",
    "json-numbers": "JSON cannot tell 2.0 from 2, and has no NaN or Infinity",
    "yaml-only": "duplicate keys and dates exist in YAML only: the parsed data is valid JSON-wise",
    **RULES_LOADER_ONLY,
}


def header(path: Path) -> dict[str, str]:
    raw = path.read_bytes()
    text = (
        raw.decode("utf-16") if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else raw.decode("utf-8", "replace")
    )
    fields = dict(re.findall(r"^# ([a-z-]+): (.*)$", text, re.MULTILINE))
    assert {"error-path", "error", "fix", "line"} <= set(fields), f"{path.name}: incomplete header {fields}"
    return fields


def test_the_corpus_is_large_and_names_only_documented_exceptions() -> None:
    assert len(BAD) >= 40, len(BAD)
    used = {header(p).get("schema-exception") for p in BAD} - {None}
    assert used <= set(EXCEPTIONS), used - set(EXCEPTIONS)


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_file_is_rejected_by_the_loader_and_the_schema(path: Path, dags_dir: Path) -> None:
    want = header(path)
    # The loader: an issue at the stated field path and line, with the message and the fix.
    with pytest.raises(ScenarioLoadError) as info:
        load(path, dags_dir=dags_dir)
    issues = info.value.issues
    where = "" if want["error-path"] == "(file)" else want["error-path"]
    matching = [i for i in issues if i.path == where and want["error"] in i.message]
    assert matching, f"no issue at {where!r} with {want['error']!r} in: {[str(i) for i in issues]}"
    issue = matching[0]
    assert want["fix"] in issue.fix, str(issue)
    assert issue.line == int(want["line"]), str(issue)
    assert str(issue).startswith(f"{issue.file}:{issue.line}: ")
    assert issue.file.endswith(f"corpus/bad/{path.name}")

    # The exported schema, on the same data the loader read.
    exception = want.get("schema-exception")
    try:
        data = yamlfile.parse(yamlfile.read(path)).data
    except yamlfile.YamlProblem:
        assert exception == "not-one-yaml-document", f"{path.name}: unreadable, but names {exception!r}"
        return
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data))
    if exception is None:
        assert errors, f"{path.name}: the loader rejects it, the JSON schema accepts it"
    else:
        assert not errors, (
            f"{path.name}: names the exception {exception!r}, but the schema rejects it too "
            f"({errors[0].message}): drop the schema-exception line"
        )


@pytest.mark.parametrize(
    "path", GOOD + discover(paths.SCENARIOS_DIR), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_good_file_is_accepted_by_the_loader_and_the_schema(path: Path, dags_dir: Path) -> None:
    registry_dir = None if path.parent == paths.SCENARIOS_DIR else dags_dir  # built-ins: the real DAG
    load(path, dags_dir=registry_dir)
    jsonschema.validate(yamlfile.parse(yamlfile.read(path)).data, SCHEMA, cls=jsonschema.Draft202012Validator)
