"""Bearer tokens on every request: who the caller is, and whether their role may do this."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from ..db import get_session
from ..domain.actor import Actor
from ..domain.tokens import hash_token
from ..errors import Forbidden, Unauthorized
from ..services import tokens

F = TypeVar("F", bound=Callable[..., Any])


def current_actor() -> Actor:
    """The authenticated caller of this request (401 without a valid token)."""
    actor = g.get("actor")
    if actor is None:
        actor = g.actor = _authenticate()
    return actor


def require_roles(*roles: str) -> Callable[[F], F]:
    """Let a write through only for these roles (the use case then opens its transaction)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            actor = current_actor()
            if actor.role not in roles:
                raise Forbidden(
                    f"role {actor.role!r} may not do this; it needs one of: {', '.join(roles)}"
                )
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


CACHED_ROLES = ("ci",)  # a revoked token of any other role stops working at once


def _lookup_cached(token: str) -> Any:
    """ci tokens checked in the last PROMOTION_TOKEN_CACHE_SECONDS skip the database.

    The deploy jobs' gate calls are the hot path: a process remembers their ci token that long
    (a revoked ci token works that much longer). Every other role's token is checked on every
    request, so revoking an admin, release-manager or approver token holds at once.
    """
    ttl = current_app.config.get("TOKEN_CACHE_SECONDS", 0)
    if not ttl:
        return tokens.authenticate(get_session(), token)
    cache = current_app.extensions.setdefault("promotion_token_cache", {})
    key, now = hash_token(token), time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = tokens.authenticate(get_session(), token)
    if row is not None and row.role in CACHED_ROLES:
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
