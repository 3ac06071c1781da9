"""Bearer tokens: a role, an optional project scope, only a SHA-256 kept at rest."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request
from sqlalchemy import DateTime, String, column, text
from sqlalchemy.orm import Session

from . import db
from .domain.actor import Actor
from .errors import Forbidden, Unauthorized

PREFIX = "pst"
REPORTERS = ("ci", "release-manager", "admin")
APPROVERS = ("approver", "release-manager", "admin")
MANAGERS = ("release-manager", "admin")
ADMINS = ("admin",)
F = TypeVar("F", bound=Callable[..., Any])


def hash_token(token: str) -> str:
    """What is stored: the token's SHA-256 (hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(token_id: int) -> str:
    """A fresh token; its id part finds the row, the rest is the secret."""
    return f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"


_TOKEN_BY_ID = text(
    "SELECT name, role, project, token_hash, revoked_at FROM tokens WHERE id = :id"
).columns(*(column(c, String) for c in ("name", "role", "project", "token_hash")),
          column("revoked_at", DateTime))


def lookup(session: Session, token: str) -> Any:
    """The live token (name, role, project) matching the presented one, in constant time."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1].isdigit() or len(parts[1]) > 12:
        return None
    row = session.connection().execute(_TOKEN_BY_ID, {"id": int(parts[1])}).first()
    if row is None or row.revoked_at is not None:
        return None
    return row if hmac.compare_digest(row.token_hash, hash_token(token)) else None


def current_actor() -> Actor:
    """The authenticated caller of this request (401 without a valid token)."""
    actor = g.get("actor")
    if actor is None:
        actor = g.actor = _authenticate()
    return actor


def require_roles(*roles: str, lock_late: bool = False) -> Callable[[F], F]:
    """Let a write through only for these roles, then open a write transaction.

    With lock_late the view opens it itself (db.begin_write) just before writing, so the
    write lock is held for the writes only (image registration: on every pipeline's path).
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            actor = current_actor()
            if actor.role not in roles:
                raise Forbidden(
                    f"role {actor.role!r} may not do this; it needs one of: {', '.join(roles)}"
                )
            if not lock_late:
                db.begin_write(db.get_session())
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def require_token(view: F) -> F:
    """Let a read through for any valid token."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_actor()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _lookup_cached(token: str) -> Any:
    """Tokens checked in the last PROMOTION_TOKEN_CACHE_SECONDS skip the database (per process).

    The gate is on every deploy job's path; a revoked token stops working within that time.
    """
    ttl = current_app.config.get("TOKEN_CACHE_SECONDS", 0)
    if not ttl:
        return lookup(db.get_session(), token)
    cache = current_app.extensions.setdefault("promotion_token_cache", {})
    key, now = hash_token(token), time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = lookup(db.get_session(), token)
    if row is not None:
        if len(cache) >= 1024:
            cache.clear()
        cache[key] = (now + ttl, row)
    return row


def _authenticate() -> Actor:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>' "
                           "(create one with 'promotion-service token create')")
    row = _lookup_cached(token.strip())
    if row is None:
        raise Unauthorized("invalid or revoked token")
    return Actor(name=row.name, role=row.role, project=row.project,
                 request_id=g.get("request_id"), source_ip=request.remote_addr)
