"""API tokens (only their hashes are stored), each held by a person."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    String,
    column,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from ..db.models import Token

# Core, typed: token lookup is on every request's path
_BY_ID = text(
    "SELECT id, name, person, role, project, token_hash, revoked_at, signed_out_at FROM tokens "
    "WHERE id = :id"
).columns(column("id", Integer),
          *(column(c, String) for c in ("name", "person", "role", "project", "token_hash")),
          column("revoked_at", DateTime), column("signed_out_at", DateTime))


def row_by_id(conn: Session | Connection, token_id: int) -> Any:
    """The token's id, name, person, role, project, hash, revocation and last sign-out times,
    if it exists."""
    conn = conn.connection() if isinstance(conn, Session) else conn
    return conn.execute(_BY_ID, {"id": token_id}).first()


def sign_out(session: Session, token_id: int, at: datetime) -> None:
    """End the web sessions opened with the token before `at`."""
    session.execute(update(Token).where(Token.id == token_id).values(signed_out_at=at))


def by_name(session: Session, name: str) -> Token | None:
    """The token with this name, compared case-insensitively (`Alice` is `alice`)."""
    return session.scalar(select(Token).where(func.lower(Token.name) == name.casefold())
                          .order_by(Token.id).limit(1))


def add(session: Session, *, name: str, person: str, role: str, project: str | None) -> Token:
    """A new row without its hash yet (the hash needs the token, the token needs the id)."""
    row = Token(name=name, person=person, role=role, project=project, token_hash="")
    session.add(row)
    session.flush()
    return row


def all_tokens(session: Session) -> list[Token]:
    """Every token, newest last."""
    return list(session.scalars(select(Token).order_by(Token.id)))
