"""Named laps of a job, printed as one line (``<step>: timings imports 0.01s, fit 0.62s, ...``).

A job's run time is a platform metric: the laps show what a step spends on imports, its own work and
MLflow (``benchmarks/bench_scenarios.py`` reads these lines from the task logs).
"""

from __future__ import annotations

import time


class Stopwatch:
    """Laps in the order taken; ``str()`` is ``name 1.23s, ...``."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.2f}s" for name, seconds in self.laps.items())
