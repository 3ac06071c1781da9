"""Errors a step raises; each carries the exit code the CI job ends with.

    StepError              base; never raised directly
    ├── Refused      (1)   the step ran and the answer is no (policy, gate, unhealthy release)
    ├── UsageError   (2)   wrong usage or input; names the option or variable and the fix
    └── ExternalError(3)   an outside system failed after retries (registry, engine, GitLab, ...)

Templates may `retry: exit_codes: [3]`: only ExternalError is worth retrying.
"""

from __future__ import annotations

from steps.runtime.outputs import Result


class StepError(Exception):
    """Base of every error a step reports; `exit_code` is what the process exits with."""

    exit_code = 3

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Refused(StepError):
    """The step ran and the answer is no: a policy failed, a gate denied, a release rolled back.

    `result`, when given, is written to the outputs all the same (a failed scan's counts).
    """

    exit_code = 1

    def __init__(self, message: str, reasons: list[str] | None = None,
                 result: Result | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons or [])
        self.result = result


class UsageError(StepError):
    """Wrong usage or input. `option` is the settings field at fault, if one is."""

    exit_code = 2

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class ExternalError(StepError):
    """An outside system (registry, engine, GitLab, the promotion service) failed after retries."""

    exit_code = 3
