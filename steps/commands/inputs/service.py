"""The promotion service a step reports to (or asks)."""

from __future__ import annotations

from dataclasses import dataclass

from steps.runtime.inputs import option


@dataclass(frozen=True)
class Service:
    """The promotion service a step reports to (or asks)."""

    service_url: str | None = option(
        "Promotion service base URL; reporting is skipped when unset.", env=("CD_SERVICE_URL",),
        metavar="URL")
    service_token: str | None = option("Bearer token for the promotion service.",
                                       env=("CD_SERVICE_TOKEN",), secret=True)
