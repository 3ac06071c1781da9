"""Bearer credentials on every request: who the caller is, and whether their role may do this.

Two kinds of credential: a service token (`pst_...`, held by a person, role and project
scope stored with it) and a CI job's GitLab ID token (role ci, scoped to the project GitLab
signed into it; api/id_tokens.py). Each view declares the roles it lets through
(`require_roles`, `require_token`); the docs' role table is checked against these.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from ..db import get_session
from ..domain.actor import ROLES, Actor
from ..domain.tokens import hash_token
from ..errors import Forbidden, Unauthorized
from ..services import tokens
from .id_tokens import looks_like_jwt

F = TypeVar("F", bound=Callable[..., Any])
ROLES_ATTRIBUTE = "_allowed_roles"  # which roles a view lets through (read by the role table)


def current_actor() -> Actor:
    """The authenticated caller of this request (401 without a valid token)."""
    actor = g.get("actor")
    if actor is None:
        actor = g.actor = _authenticate()
    return actor


def require_roles(*roles: str) -> Callable[[F], F]:
    """Let a request through only for these roles (a write's use case then opens its
    transaction; the project scope is checked by the use case)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            actor = current_actor()
            if actor.role not in roles:
                raise Forbidden(
                    f"role {actor.role!r} may not do this; it needs one of: {', '.join(roles)}"
                )
            return view(*args, **kwargs)

        setattr(wrapper, ROLES_ATTRIBUTE, tuple(roles))
        return wrapper  # type: ignore[return-value]

    return decorate


def require_token(view: F) -> F:
    """Let a read through for any valid credential (scoped to its project by the use case)."""
    return require_roles(*ROLES)(view)


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
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>' (a CI "
                           "job's GitLab ID token, or one from 'promotion-service token create')")
    where = {"request_id": g.get("request_id"), "source_ip": request.remote_addr}
    if looks_like_jwt(token):
        verifier = current_app.extensions.get("promotion_id_tokens")
        if verifier is None:
            raise Unauthorized("GitLab ID tokens are not accepted here: set "
                               "PROMOTION_OIDC_ISSUER and PROMOTION_OIDC_AUDIENCE on the service")
        pipeline = verifier.verify(token)
        return Actor(name=pipeline.user, role="ci", project=pipeline.project_path,
                     pipeline=pipeline, **where)
    row = _lookup_cached(token)
    if row is None:
        raise Unauthorized("invalid or revoked token")
    return token_actor(row)


def token_actor(row: Any) -> Actor:
    """The person a live service token stands for, in this request (API or web session)."""
    return Actor(name=row.person, role=row.role, project=row.project, token_id=row.id,
                 request_id=g.get("request_id"), source_ip=request.remote_addr)
