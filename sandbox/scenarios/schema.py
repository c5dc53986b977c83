"""Regenerate ``scenarios/schema.json``: ``python -m sandbox.scenarios.schema`` (a test keeps it in sync)."""

from __future__ import annotations

from sandbox import paths
from sandbox.scenarios.model import render_json_schema


def main() -> None:
    target = paths.SCENARIOS_DIR / "schema.json"
    target.write_text(render_json_schema())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
