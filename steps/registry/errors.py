"""The registry client's one error; the command that called it chooses the exit code."""

from __future__ import annotations


class RegistryError(Exception):
    """A registry refused or failed a request; the message names the registry.

    `transient` failures (5xx, 429, connection refused or reset, timeouts) may pass if tried
    again: the client retries them with backoff, and the last one, after its retries, is still
    marked transient. Refused credentials, denied scopes and other answers are not.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
