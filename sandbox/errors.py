"""Errors the harness raises for the user: each says what went wrong and what to do."""

from __future__ import annotations


class SandboxError(Exception):
    """A problem the user can act on: ``what`` happened, and the ``fix``."""

    def __init__(self, what: str, fix: str = "", *, detail: str = "") -> None:
        self.what = what
        self.fix = fix
        self.detail = detail
        super().__init__(self.render())

    def render(self) -> str:
        parts = [self.what]
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        if self.detail:
            parts.append(self.detail)
        return "\n".join(parts)


class ConfigError(SandboxError):
    """Bad user input: a settings value, a scenario file, a CLI argument."""


class ServiceError(SandboxError):
    """A service failed to start, exited, or never became healthy."""


class PreflightError(SandboxError):
    """A tool or capability the chosen backend needs is missing."""
