"""Secrets never reach a log: known values, and their encoded forms, become [MASKED].

`is_secret_name` says which variables hold secrets whatever step runs (the CLI masks their
values; the template redacts what they fill in).
"""

from __future__ import annotations

import re
from typing import TextIO

_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|PRIVATE_KEY|API_KEY|AUTH_CONFIG)$")


def is_secret_name(name: str) -> bool:
    """Whether a variable's name says its value is a secret (`*_PASSWORD`, `*_TOKEN`, ...)."""
    return _SECRET_NAME.search(name) is not None


class Masker:
    """Replaces every known secret in a text with [MASKED]."""

    MIN_LENGTH = 4

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *secrets: str | None) -> None:
        """Mask these values, and their base64 and URL-encoded forms (auth headers carry those)."""
        import base64
        from urllib.parse import quote

        for secret in secrets:
            if not secret or len(secret) < self.MIN_LENGTH:
                continue
            self._secrets.update({secret, quote(secret, safe=""),
                                  base64.b64encode(secret.encode()).decode()})
        if self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_basic_auth(self, user: str, password: str) -> None:
        """Mask the `user:password` pair as a basic auth header would carry it."""
        if password:
            self.add(password, f"{user}:{password}")

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub("[MASKED]", text)


class MaskingStream:
    """A text stream that masks secrets before they reach the underlying stream."""

    def __init__(self, stream: TextIO, masker: Masker) -> None:
        self._stream = stream
        self._masker = masker

    def write(self, text: str) -> int:
        self._stream.write(self._masker(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", "utf-8")
