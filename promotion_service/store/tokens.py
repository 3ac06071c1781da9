"""API tokens: create (shown once), list, revoke."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth import hash_token, new_token
from ..domain.actor import ROLES, Actor
from ..errors import Conflict, Invalid, NotFound
from ..models import Token, utcnow
from . import audit


def create(session: Session, actor: Actor, *, name: str, role: str,
           project: str | None = None) -> tuple[Token, str]:
    """A new token row and the token itself (only its hash is kept)."""
    if role not in ROLES:
        raise Invalid.field("role", f"must be one of {', '.join(ROLES)}")
    if session.scalar(select(Token.id).where(Token.name == name)) is not None:
        raise Conflict(f"a token named {name!r} exists; pick another name or revoke it first")
    row = Token(name=name, role=role, project=project, token_hash="")  # set once the id is known
    session.add(row)
    session.flush()
    token = new_token(row.id)
    row.token_hash = hash_token(token)
    session.flush()
    audit.append(session, actor, "token.created", "token", row.id,
                 after={"name": name, "role": role, "project": project})
    return row, token


def list_all(session: Session) -> list[Token]:
    """Every token, newest last (hashes are never shown)."""
    return list(session.scalars(select(Token).order_by(Token.id)))


def revoke(session: Session, actor: Actor, name: str) -> Token:
    """The token stops working at once."""
    row = session.scalar(select(Token).where(Token.name == name))
    if row is None:
        raise NotFound(f"no token named {name!r} (see 'promotion-service token list')")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
        audit.append(session, actor, "token.revoked", "token", row.id, after={"name": name})
    return row
