"""The exported JSON schema stays in sync with the pydantic models (test_corpus.py checks it against
the loader on good and bad files)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from sandbox import paths
from sandbox.scenarios.model import render_json_schema

SCHEMA_FILE = paths.SCENARIOS_DIR / "schema.json"


def test_schema_file_is_in_sync() -> None:
    assert SCHEMA_FILE.read_text() == render_json_schema(), (
        "scenarios/schema.json is stale; regenerate it with: python -m sandbox.scenarios.schema"
    )


def test_json_schema_rejects_unknown_keys_and_bad_states() -> None:
    schema = json.loads(render_json_schema())
    ok = {"apiVersion": "mlops-sandbox/v1", "name": "x", "expect": {"tasks": {"t": "success"}}}
    jsonschema.validate(ok, schema)
    for bad in (
        {**ok, "bogus": 1},
        {**ok, "expect": {"tasks": {"t": "succeeded"}}},
        {**ok, "apiVersion": "v0"},
        {**ok, "runs": 0},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
