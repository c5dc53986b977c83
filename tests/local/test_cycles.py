"""Repeated ``up``/``down`` leaves nothing behind: a short run of benchmarks/bench_up_down_cycles.py
(the 50-cycle version is the benchmark; this one guards the same counts in the test suite)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from sandbox import paths

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _bench():
    path = paths.PROJECT_ROOT / "benchmarks" / "bench_up_down_cycles.py"
    spec = importlib.util.spec_from_file_location("bench_up_down_cycles", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_three_up_down_cycles_leak_no_process_port_or_file(tmp_path: Path) -> None:
    results = _bench().run(3, tmp_path, report=False)
    assert len(results) == 3
    for i, cycle in enumerate(results, 1):
        leaked = {k: getattr(cycle, k) for k in ("processes", "ports", "fds", "children")}
        assert leaked == {"processes": 0, "ports": 0, "fds": 0, "children": 0}, f"cycle {i}: {leaked}"
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")], "state left after purge"
