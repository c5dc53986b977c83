"""Masking secrets in everything the harness writes or prints: one rule, failing closed.

``redact`` masks known values. A ``Redactor`` carries the values of one sandbox and whether they
could all be read: when they could not, it also masks every token shaped like a generated secret
(and says so in ``notice``), so a report or bundle never holds a secret in the clear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# Shorter values would mangle ordinary text (a user name such as "admin" is no secret).
MIN_SECRET_LENGTH = 6
# The shape of what ``sandbox.secrets.generate`` makes (url-safe base64, hex, fernet keys), 20+
# characters with a letter and a digit. Used only when the real values are unknown: it also masks
# some ids and hashes, which is the price of failing closed.
_TOKEN = r"[A-Za-z0-9_\-]"
_SECRET_SHAPED = re.compile(
    rf"(?<!{_TOKEN})(?={_TOKEN}*[0-9])(?={_TOKEN}*[A-Za-z]){_TOKEN}{{20,}}={{0,2}}(?![A-Za-z0-9_\-=])"
)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value (longest first, so one value inside another is masked whole)."""
    for value in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def secret_shaped(value: str) -> bool:
    """Whether the fail-closed mask would catch ``value`` (every generated secret must be)."""
    return _SECRET_SHAPED.fullmatch(value) is not None


class Redactor:
    """Masks one sandbox's secrets; ``problem`` says why they could not all be read (fail closed)."""

    def __init__(self, secrets: Iterable[str] = (), *, problem: str | None = None) -> None:
        self.secrets = [s for s in secrets if s]
        self.problem = problem

    @property
    def complete(self) -> bool:
        return self.problem is None

    def __call__(self, text: str) -> str:
        text = redact(text, self.secrets)
        if not self.complete:
            text = _SECRET_SHAPED.sub(MASK, text)
        return text

    def notice(self) -> str | None:
        """What a bundle should say when it was masked by shape, not by value (None when complete)."""
        if self.complete:
            return None
        return (
            f"The sandbox's secrets could not be read ({self.problem}), so every token shaped like a "
            "generated secret (20+ letters and digits) was masked; some ids may be masked too.\n"
        )
