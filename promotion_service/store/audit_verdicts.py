"""Verdicts of full walks of the audit chain: the latest is what the audit page shows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..db.models import AuditVerdict

_LATEST = select(AuditVerdict).order_by(AuditVerdict.id.desc()).limit(1)


def latest(session: Session) -> AuditVerdict | None:
    """The newest verdict stored, if any (one row by the primary key)."""
    return session.scalar(_LATEST)


def add(session: Session, *, checked_at: datetime, entries: int, through_id: int | None,
        head_hash: str, checkpoints: int, problem: str | None,
        problem_entry_id: int | None) -> None:
    """Store a verdict."""
    session.execute(insert(AuditVerdict).values(
        checked_at=checked_at, entries=entries, through_id=through_id, head_hash=head_hash,
        checkpoints=checkpoints, problem=problem, problem_entry_id=problem_entry_id))
