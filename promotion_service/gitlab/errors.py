"""GitLab's failures, classified once, so callers only decide *when* to retry:

    GitLabError                  a call to GitLab failed
    +-- TransientGitLabError     may succeed later: 5xx, 429 (with Retry-After), 408,
    |                            409 "Resource lock" or "in progress" (another update holds
    |                            GitLab's lock), timeouts, connection refused/reset
    +-- TerminalGitLabError      will not succeed by retrying: other 4xx (bad token,
                                 unknown project or ref, variables not allowed, ...)
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "GitLabError",
    "TerminalGitLabError",
    "TransientGitLabError",
    "error_from_response",
    "message_text",
]


class GitLabError(Exception):
    """A call to GitLab failed; ``transient`` says whether trying again may help."""

    transient = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        operation: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.operation = operation

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        code = f"HTTP {self.status}: " if self.status else ""
        return f"{where}{code}{self.message}"


class TransientGitLabError(GitLabError):
    """GitLab may accept the same call later (server error, rate limit, network)."""

    transient = True


class TerminalGitLabError(GitLabError):
    """GitLab refused the call for good: retrying the same request cannot succeed."""


def message_text(message: Any) -> str:
    """Flatten GitLab's error body (str, dict of field -> [errors], list) into one line."""
    if message is None:
        return ""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    if isinstance(message, str):
        return message.strip()[:500]
    if isinstance(message, Mapping):
        parts = []
        for key, value in message.items():
            text = message_text(value)
            parts.append(f"{key}: {text}" if key not in ("base", "error") else text)
        return "; ".join(parts)
    if isinstance(message, list | tuple):
        return ", ".join(message_text(m) for m in message)
    return str(message)


def _retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds GitLab asks us to wait: Retry-After (seconds or HTTP date), else RateLimit-Reset."""
    now = time.time() if now is None else now
    value = headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            pass
    reset = headers.get("RateLimit-Reset")
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset) - now)
    return None


def error_from_response(
    status: int, message: Any, headers: Mapping[str, str] | None = None, operation: str = ""
) -> GitLabError:
    """Classify one non-2xx GitLab answer as transient or terminal."""
    headers = headers or {}
    text = message_text(message) or f"HTTP {status}"
    if status == 429:
        return TransientGitLabError(
            text, status=status, retry_after=_retry_after(headers), operation=operation
        )
    locked = status == 409 and any(w in text.lower() for w in ("resource lock", "in progress"))
    if status >= 500 or status == 408 or locked:
        return TransientGitLabError(text, status=status, operation=operation)
    return TerminalGitLabError(text, status=status, operation=operation)
