"""API tokens: created for a person (shown once), listed, revoked, and checked on every request.

Revoking a token withdraws the approvals it gave that still stand (audited, each one); its
rejections stand until someone withdraws them, so a revocation never lets more through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.models import Token, utcnow
from ..domain.actor import ROLES, Actor
from ..domain.identity import IdentityError, person
from ..domain.tokens import hash_matches, hash_token, new_token, token_id
from ..errors import Conflict, Invalid, NotFound
from ..store import audit, tokens
from . import approvals


def create(session: Session, actor: Actor, *, name: str, role: str, person_name: str | None = None,
           project: str | None = None, all_projects: bool = False) -> tuple[Token, str]:
    """A new token of a person (its name by default) and the token itself (only its hash is kept).

    A ci token acts for one project unless `all_projects` says otherwise, on purpose.
    """
    if role not in ROLES:
        raise Invalid.field("role", f"must be one of {', '.join(ROLES)}")
    try:
        label = person(name, "name")
        holder = person(person_name if person_name is not None else name, "person")
    except IdentityError as e:
        raise Invalid.field(e.field, e.reason) from None
    if role == "ci" and project is None and not all_projects:
        raise Invalid.field("project", "a ci token acts for one project: give --project "
                                       "PATH, or --all-projects to let it act for every "
                                       "project on purpose")
    if project is not None and all_projects:
        raise Invalid.field("project", "either one project or all_projects, not both")
    with write_transaction(session):
        if tokens.by_name(session, label) is not None:
            raise Conflict(f"a token named {label!r} exists; pick another name (a person may "
                           "hold several tokens: --name alice-laptop --person alice)")
        row = tokens.add(session, name=label, person=holder, role=role, project=project)
        token = new_token(row.id)
        row.token_hash = hash_token(token)
        session.flush()
        audit.append(session, actor, "token.created", "token", row.id,
                     after={"name": label, "person": holder, "role": role, "project": project})
    return row, token


def list_all(session: Session) -> list[Token]:
    """Every token, newest last (hashes are never shown)."""
    return tokens.all_tokens(session)


def revoke(session: Session, actor: Actor, name: str) -> tuple[Token, list[int]]:
    """The token stops working, and the approvals it gave are withdrawn (their ids)."""
    with write_transaction(session):
        row = tokens.by_name(session, name)
        if row is None:
            raise NotFound(f"no token named {name!r} (see 'promotion-service token list')")
        withdrawn: list[int] = []
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.flush()
            withdrawn = approvals.withdraw_given_by_token(session, actor, row.id,
                                                          f"token {row.name} revoked")
            audit.append(session, actor, "token.revoked", "token", row.id,
                         after={"name": row.name, "person": row.person,
                                "withdrawn_approvals": withdrawn})
    return row, withdrawn


def authenticate(conn: Session | Connection, token: str) -> Any:
    """The live token (id, name, person, role, project) matching the presented one."""
    row_id = token_id(token)
    if row_id is None:
        return None
    row = tokens.row_by_id(conn, row_id)
    if row is None or row.revoked_at is not None:
        return None
    return row if hash_matches(row.token_hash, token) else None


def is_live(conn: Session | Connection, token_row_id: int) -> bool:
    """Is the token not revoked (now, not as a cache remembers it)?"""
    return live(conn, token_row_id) is not None


def live(conn: Session | Connection, token_row_id: int) -> Any:
    """The token (id, name, person, role, project) by its id, unless it is revoked."""
    row = tokens.row_by_id(conn, token_row_id)
    return row if row is not None and row.revoked_at is None else None


def of_session(conn: Session | Connection, token_row_id: int, opened_at: datetime) -> Any:
    """The token behind a web session opened at `opened_at`, unless it was revoked or signed
    out of since: a session holds the token's id and is worth no more than the token."""
    row = live(conn, token_row_id)
    if row is None or (row.signed_out_at is not None and row.signed_out_at >= opened_at):
        return None
    return row


def sign_out(session: Session, token_row_id: int) -> None:
    """End every web session opened with the token until now (a copied cookie included)."""
    with write_transaction(session):
        tokens.sign_out(session, token_row_id, utcnow())
