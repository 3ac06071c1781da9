"""The registry client's one error, and the step error it becomes."""

from __future__ import annotations

from steps.runtime.errors import ExternalError, StepError, UsageError


class RegistryError(Exception):
    """A registry refused or failed a request; the message names the registry.

    `transient` failures (5xx, 429, connection refused or reset, timeouts) may pass if tried
    again: the client retries them with backoff, and the last one, after its retries, is still
    marked transient. `refused`: the registry wants other credentials (none found, refused,
    or a scope denied), which no retry changes.
    """

    def __init__(self, message: str, transient: bool = False, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.refused = refused


def step_error(error: RegistryError) -> StepError:
    """Refused credentials are the user's to fix (exit 2); anything else the registry did, after
    the retries, is an outside failure (exit 3)."""
    return UsageError(error.message) if error.refused else ExternalError(error.message)
