"""The outbox: calls to GitLab written in the same transaction as their cause, then
claimed by one dispatcher at a time (outbox/ sends them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from ..db import is_postgres
from ..db.models import Outbox, utcnow

KINDS = ("trigger_pipeline", "status_check_response", "commit_status", "play_job",
         "deployment_approval")


def enqueue(session: Session, kind: str, payload: dict[str, Any],
            promotion_id: int | None = None) -> Outbox:
    """Add a row for the dispatcher, in the caller's transaction."""
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}")
    row = Outbox(kind=kind, payload=payload, promotion_id=promotion_id, state="pending",
                 attempts=0, available_at=utcnow())
    session.add(row)
    return row


def get(session: Session, row_id: int) -> Outbox | None:
    """The outbox row with this id, if any."""
    return session.get(Outbox, row_id)


def kinds(session: Session, row_ids: list[int]) -> dict[int, str]:
    """Each row's kind."""
    rows = session.execute(select(Outbox.id, Outbox.kind).where(Outbox.id.in_(row_ids)))
    return {row_id: kind for row_id, kind in rows}


def get_many(session: Session, row_ids: list[int]) -> list[Outbox]:
    """The outbox rows with these ids (in the session from then on: `get` reads no more)."""
    return list(session.scalars(select(Outbox).where(Outbox.id.in_(row_ids))))


def claim(session: Session, owner: str, *, lease_seconds: float, batch_size: int) -> list[int]:
    """Lease up to batch_size due rows to `owner`; their ids (the caller commits).

    PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so concurrent dispatchers skip each
    other's rows. Elsewhere one conditional UPDATE per row, which one dispatcher can win.
    """
    now = utcnow()
    until = now + timedelta(seconds=lease_seconds)
    due = (
        select(Outbox.id)
        .where(Outbox.state == "pending", Outbox.available_at <= now,
               or_(Outbox.locked_until.is_(None), Outbox.locked_until < now))
        .order_by(Outbox.available_at, Outbox.id)
        .limit(batch_size)
    )
    if is_postgres(session):
        ids = list(session.scalars(due.with_for_update(skip_locked=True)))
        if ids:
            session.execute(update(Outbox).where(Outbox.id.in_(ids))
                            .values(locked_by=owner, locked_until=until))
        return ids
    claimed = []
    for row_id in session.scalars(due).all():
        won = session.execute(
            update(Outbox)
            .where(Outbox.id == row_id, Outbox.state == "pending",
                   or_(Outbox.locked_until.is_(None), Outbox.locked_until < now))
            .values(locked_by=owner, locked_until=until)
        ).rowcount
        if won:
            claimed.append(row_id)
    return claimed


def renew(session: Session, row_id: int, owner: str, lease_seconds: float) -> Outbox | None:
    """The row `owner` still holds (its lease not run out), with a fresh lease, read back in
    the same statement; None if it lost the row: then another dispatcher may be sending it."""
    now = utcnow()
    return session.scalars(update(Outbox).where(
        Outbox.id == row_id, Outbox.locked_by == owner, Outbox.state == "pending",
        Outbox.locked_until > now,
    ).values(locked_until=now + timedelta(seconds=lease_seconds)).returning(Outbox),
        execution_options={"populate_existing": True, "synchronize_session": False}).first()


def mark_sent(session: Session, owner: str, sent: list[tuple[int, int, str | None]]) -> None:
    """These rows landed: (row id, attempts, outcome: what happened beside, e.g. a pipeline
    not recorded). One statement for them all (executemany), each row only while `owner`
    holds it and it is pending."""
    if not sent:
        return
    table = Outbox.__table__
    session.connection().execute(
        update(table).where(table.c.id == bindparam("row_id"), table.c.locked_by == owner,
                            table.c.state == "pending")
        .values(state="sent", sent_at=utcnow(), attempts=bindparam("tries"),
                last_error=bindparam("outcome"), locked_by=None, locked_until=None),
        [{"row_id": row_id, "tries": attempts,
          "outcome": None if outcome is None else outcome[:2000]}
         for row_id, attempts, outcome in sent])


def mark_failed(session: Session, row_id: int, owner: str, attempts: int, message: str) -> None:
    """The row will never land; keep why."""
    _release(session, row_id, owner, state="failed", attempts=attempts,
             last_error=message[:2000])


def retry_at(session: Session, row_id: int, owner: str, attempts: int, error: str,
             available_at: datetime) -> None:
    """Try the row again from `available_at`."""
    _release(session, row_id, owner, attempts=attempts, last_error=error[:2000],
             available_at=available_at)


def cancel_for_promotions(session: Session, promotion_ids: list[int], message: str) -> int:
    """Rows not yet sent for these promotions will never be; how many were cancelled.

    A row a dispatcher is sending at this moment is cancelled too: its result is then not
    recorded (only pending rows are), and the gate refuses what it would have started.
    """
    if not promotion_ids:
        return 0
    return session.execute(update(Outbox).where(
        Outbox.promotion_id.in_(promotion_ids), Outbox.state == "pending",
    ).values(state="failed", last_error=message[:2000], locked_by=None,
             locked_until=None)).rowcount


def counts_by_state(session: Session) -> list[tuple[str, int]]:
    """(state, how many) for every state in use."""
    return [(state, count) for state, count in session.execute(
        select(Outbox.state, func.count()).group_by(Outbox.state))]


def _release(session: Session, row_id: int, owner: str, **values: Any) -> None:
    """Update the row and give up the lease, only while `owner` holds it and it is pending."""
    session.execute(update(Outbox).where(
        Outbox.id == row_id, Outbox.locked_by == owner, Outbox.state == "pending"
    ).values(locked_by=None, locked_until=None, **values))
