"""Helpers shared by the test folders."""

from __future__ import annotations

from sandbox.pytest_plugin import missing

__all__ = ["missing"]
