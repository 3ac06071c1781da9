"""How dispatchers behave: read from the app config (PROMOTION_* variables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import ConfigError


@dataclass(frozen=True)
class DispatcherSettings:
    """How the dispatcher behaves; read from the app config (PROMOTION_* variables)."""

    trigger_ref: str = "main"
    trigger_token: str | None = None
    lease_seconds: float = 60.0
    batch_size: int = 20
    concurrency: int = 4  # calls of a batch in flight at once
    max_attempts: int = 20
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    poll_seconds: float = 1.0
    gitlab_timeout: float = 10.0

    @classmethod
    def from_config(cls, config: Any) -> DispatcherSettings:
        """Build from Flask config; a bad number names its PROMOTION_ variable."""
        def number(key: str, default: float, kind: type = float) -> Any:
            raw = config.get(key)
            if raw in (None, ""):
                return default
            try:
                value = kind(raw)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"PROMOTION_{key} must be a {kind.__name__} number, not {raw!r}"
                ) from None
            if value <= 0:
                raise ConfigError(f"PROMOTION_{key} must be greater than 0, not {raw!r}")
            return value

        return cls(
            trigger_ref=config.get("GITLAB_TRIGGER_REF") or "main",
            trigger_token=config.get("GITLAB_TRIGGER_TOKEN") or None,
            lease_seconds=number("DISPATCHER_LEASE_SECONDS", cls.lease_seconds),
            batch_size=number("DISPATCHER_BATCH_SIZE", cls.batch_size, int),
            concurrency=number("DISPATCHER_CONCURRENCY", cls.concurrency, int),
            max_attempts=number("DISPATCHER_MAX_ATTEMPTS", cls.max_attempts, int),
            backoff_initial=number("DISPATCHER_BACKOFF_SECONDS", cls.backoff_initial),
            backoff_max=number("DISPATCHER_BACKOFF_MAX_SECONDS", cls.backoff_max),
            poll_seconds=number("DISPATCHER_POLL_SECONDS", cls.poll_seconds),
            gitlab_timeout=number("GITLAB_TIMEOUT_SECONDS", cls.gitlab_timeout),
        )
