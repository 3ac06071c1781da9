"""Configuration from PROMOTION_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

PREFIX = "PROMOTION_"
# variable suffix -> (app.config key, parser, default)
KNOWN: dict[str, tuple[str, Any, Any]] = {
    "DATABASE_URL": ("DATABASE_URL", str, None),
    "GITLAB_URL": ("GITLAB_URL", str, None),
    "GITLAB_TOKEN": ("GITLAB_TOKEN", str, None),
    "WEBHOOK_SECRET": ("WEBHOOK_SECRET", str, None),
    "POLICY_FILE": ("POLICY_FILE", str, None),
    "MAX_BODY_BYTES": ("MAX_CONTENT_LENGTH", int, 64 * 1024),
    "DB_TIMEOUT": ("DB_TIMEOUT", float, 3.0),
    "DB_POOL_SIZE": ("DB_POOL_SIZE", int, 5),
    "PROXY_HOPS": ("PROXY_HOPS", int, 0),
    "LOG_LEVEL": ("LOG_LEVEL", str, "INFO"),
    "MAX_CONNECTIONS": ("MAX_CONNECTIONS", int, 4096),
    "IDLE_TIMEOUT": ("IDLE_TIMEOUT", float, 60.0),
    "AUDIT_CHECKPOINT_SECONDS": ("AUDIT_CHECKPOINT_SECONDS", float, 60.0),
    # how often a worker walks the whole audit chain and stores the verdict (0: never)
    "AUDIT_VERIFY_SECONDS": ("AUDIT_VERIFY_SECONDS", float, 3600.0),
    "TOKEN_CACHE_SECONDS": ("TOKEN_CACHE_SECONDS", float, 5.0),
    "SESSION_HOURS": ("SESSION_HOURS", float, 8.0),  # a web page session, from sign-in
    "SECRET_KEY": ("SECRET_KEY", str, None),  # signs web sessions; the same on every instance
}


def is_on(value: Any) -> bool:
    """A yes/no setting: 1, true, yes or on (any case) mean yes; anything else no."""
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


class ConfigError(ValueError):
    """A PROMOTION_* variable has a wrong value; the message names it."""


def load_config(environ: Mapping[str, str] | None = None,
                instance_path: str | None = None) -> dict[str, Any]:
    """Flask config keys from PROMOTION_* variables (unknown ones pass through as strings)."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {key: default for key, _, default in KNOWN.values()}
    for name, value in environ.items():
        if not name.startswith(PREFIX):
            continue
        suffix = name[len(PREFIX):]
        key, parse, _ = KNOWN.get(suffix, (suffix, str, None))
        try:
            config[key] = parse(value)
        except ValueError as exc:
            raise ConfigError(f"{name}: expected {parse.__name__}, got {value!r}") from exc
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = default_database_url(instance_path or os.getcwd())
    return config


def default_database_url(directory: str) -> str:
    """An SQLite file in the app's instance folder: nothing to set up."""
    return f"sqlite:///{os.path.join(directory, 'promotion.db')}"
