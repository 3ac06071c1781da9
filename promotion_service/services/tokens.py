"""API tokens: created (shown once), listed, revoked, and checked on every request."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.models import Token, utcnow
from ..domain.actor import ROLES, Actor
from ..domain.tokens import hash_matches, hash_token, new_token, token_id
from ..errors import Conflict, Invalid, NotFound
from ..store import audit, tokens


def create(session: Session, actor: Actor, *, name: str, role: str,
           project: str | None = None) -> tuple[Token, str]:
    """A new token row and the token itself (only its hash is kept)."""
    if role not in ROLES:
        raise Invalid.field("role", f"must be one of {', '.join(ROLES)}")
    with write_transaction(session):
        if tokens.by_name(session, name) is not None:
            raise Conflict(f"a token named {name!r} exists; pick another name or revoke it "
                           "first")
        row = tokens.add(session, name=name, role=role, project=project)
        token = new_token(row.id)
        row.token_hash = hash_token(token)
        session.flush()
        audit.append(session, actor, "token.created", "token", row.id,
                     after={"name": name, "role": role, "project": project})
    return row, token


def list_all(session: Session) -> list[Token]:
    """Every token, newest last (hashes are never shown)."""
    return tokens.all_tokens(session)


def revoke(session: Session, actor: Actor, name: str) -> Token:
    """The token stops working at once."""
    with write_transaction(session):
        row = tokens.by_name(session, name)
        if row is None:
            raise NotFound(f"no token named {name!r} (see 'promotion-service token list')")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.flush()
            audit.append(session, actor, "token.revoked", "token", row.id,
                         after={"name": name})
    return row


def authenticate(conn: Session | Connection, token: str) -> Any:
    """The live token (name, role, project) matching the presented one, in constant time."""
    row_id = token_id(token)
    if row_id is None:
        return None
    row = tokens.row_by_id(conn, row_id)
    if row is None or row.revoked_at is not None:
        return None
    return row if hash_matches(row.token_hash, token) else None
