"""The audit log: append an entry chained to the last one, read entries back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Integer, String, Text, and_, bindparam, cast, func, insert, or_, select
from sqlalchemy.orm import Session

from ..db import is_postgres, take_write_lock
from ..db.listing import Listing
from ..db.models import (
    AuditEntry,
    Deployment,
    EmergencyStop,
    Environment,
    Image,
    Promotion,
    Release,
    utcnow,
)
from ..domain.actor import Actor
from ..domain.audit_chain import GENESIS, HASHED_FIELDS, entry_hash

_LAST_HASH = select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
_INSERT = insert(AuditEntry.__table__)
_SUBJECT = bindparam("subject_key", type_=Integer)
# The project each kind of subject belongs to (the kinds missing belong to no project). The
# entry records it as it is written, in the INSERT itself (no extra round trip), so that a
# project's entries are one range of an index; revision 0011 gave older entries the same.
_PROJECT_OF = {
    "project": select(_SUBJECT),
    "environment": select(Environment.project_id).where(Environment.id == _SUBJECT),
    "image": select(Image.project_id).where(Image.id == _SUBJECT),
    "release": select(Release.project_id).where(Release.id == _SUBJECT),
    "promotion": select(Release.project_id).join(Promotion, Promotion.release_id == Release.id)
    .where(Promotion.id == _SUBJECT),
    "deployment": select(Release.project_id)
    .join(Deployment, Deployment.release_id == Release.id).where(Deployment.id == _SUBJECT),
}
_INSERTS = {kind: _INSERT.values(project_id=query.scalar_subquery())
            for kind, query in _PROJECT_OF.items()}


def append(session: Session, actor: Actor, action: str, subject_type: str,
           subject_id: Any, before: dict[str, Any] | None = None,
           after: dict[str, Any] | None = None) -> str:
    """Record one change, chained to the previous entry; returns the entry's hash."""
    return append_many(session, actor, [(action, subject_type, subject_id, before, after)])[-1]


Change = tuple[str, str, Any, "dict[str, Any] | None", "dict[str, Any] | None"]
"""(action, subject type, subject id, before, after): one entry for append_many."""


def append_many(session: Session, actor: Actor, changes: list[Change]) -> list[str]:
    """Record changes in this order, each chained to the one before, with one read of the
    last entry and an INSERT per run of the same kind of subject (executemany); their hashes."""
    if not changes:
        return []
    if session.new or session.dirty:
        session.flush()
    conn = session.connection()
    if is_postgres(session):
        take_write_lock(session)
    prev = conn.execute(_LAST_HASH).scalar() or GENESIS
    runs: list[tuple[Any, list[dict[str, Any]]]] = []
    hashes = []
    for action, subject_type, subject_id, before, after in changes:
        fields = {
            "at": utcnow().isoformat(timespec="microseconds"),
            "actor": actor.name, "role": actor.role, "action": action,
            "subject_type": subject_type,
            "subject_id": None if subject_id is None else str(subject_id),
            "before": before, "after": after,
            "request_id": actor.request_id, "source_ip": actor.source_ip,
        }
        digest = entry_hash(prev, fields)
        row = {**fields, "prev_hash": prev, "hash": digest}
        subject = fields["subject_id"]
        if subject_type in _INSERTS and subject is not None and subject.isdecimal():
            statement, row = _INSERTS[subject_type], row | {"subject_key": int(subject)}
        else:
            statement = _INSERT
        if runs and runs[-1][0] is statement:
            runs[-1][1].append(row)
        else:
            runs.append((statement, [row]))
        hashes.append(digest)
        prev = digest
    for statement, rows in runs:  # in order: ids ascend along the chain
        conn.execute(statement, rows if len(rows) > 1 else rows[0])
    return hashes


def length_and_head(session: Session) -> tuple[int, str | None]:
    """How many entries there are, and the newest one's hash."""
    row = session.execute(select(func.count(), _LAST_HASH.scalar_subquery())
                          .select_from(AuditEntry)).one()  # one statement: one snapshot
    return row[0] or 0, row[1]


_AS_STORED = (select(AuditEntry.id, AuditEntry.prev_hash, AuditEntry.hash,
                     *(cast(getattr(AuditEntry, c), Text) if c in ("before", "after")
                       else getattr(AuditEntry, c) for c in HASHED_FIELDS))
              .order_by(AuditEntry.id))
_STORED = _AS_STORED.execution_options(stream_results=True, yield_per=5000)
_CHUNKED_LIBPQ = 170000  # the first libpq that sends a streamed result in chunks of rows


def stored_in_order(session: Session) -> Iterator[Sequence[Any]]:
    """Every entry as stored, oldest first: id, prev_hash, hash, then the HASHED_FIELDS with
    `before` and `after` as their JSON text (parsing is left to the reader, which can do it
    faster), in batches of 5,000: memory stays flat in the log's length.

    On PostgreSQL through psycopg with libpq 17 or later, the server streams the whole result
    in chunks of rows while the walk hashes (no round trip per batch, no SQLAlchemy rows);
    elsewhere a server-side cursor (SQLite: a plain one) fetches batch after batch.
    """
    connection = session.connection()
    if connection.dialect.driver == "psycopg" and _chunked_rows():
        yield from _streamed(connection.connection.driver_connection,
                             str(_STORED.compile(dialect=connection.dialect)))
        return
    for batch in connection.execute(_STORED).partitions():
        yield from batch


def stored_after(session: Session, after_id: int | None, limit: int) -> list[Sequence[Any]]:
    """At most `limit` entries as `stored_in_order` gives them, oldest first, from the one
    after entry `after_id` (from the first when None): one range of the primary key, read
    at the same cost however long the log is before it."""
    statement = _AS_STORED if after_id is None else _AS_STORED.where(AuditEntry.id > after_id)
    return list(session.execute(statement.limit(limit)))


def hash_of(session: Session, entry_id: int) -> str | None:
    """The stored hash of one entry (None: there is no such entry)."""
    return session.scalar(select(AuditEntry.hash).where(AuditEntry.id == entry_id))


def _chunked_rows() -> bool:
    import psycopg

    return psycopg.pq.version() >= _CHUNKED_LIBPQ


def _streamed(dbapi: Any, sql: str) -> Iterator[Sequence[Any]]:
    from psycopg.pq import TransactionStatus

    dbapi.execute("SAVEPOINT audit_walk")
    try:
        yield from dbapi.cursor().stream(sql, size=5000)
    finally:
        # A walk that stops early (a chain break) closes the stream, which cancels the
        # statement and so fails the transaction the session goes on with: undo that.
        failed = dbapi.info.transaction_status == TransactionStatus.INERROR
        dbapi.execute(f"{'ROLLBACK TO' if failed else 'RELEASE'} SAVEPOINT audit_walk")


def listing(session: Session, filters: dict[str, Any], project_id: int | None = None, *,
            environment: str | None = None, since: str | None = None,
            until: str | None = None) -> Listing:
    """Entries, newest first, where each given column equals its value (and, with a project,
    only the entries about it; with an environment name, those about environments of that
    name; with since/until, ISO times, those in [since, until))."""
    stmt = select(AuditEntry)
    for key, value in filters.items():
        stmt = stmt.where(getattr(AuditEntry, key) == value)
    if project_id is not None:
        stmt = stmt.where(AuditEntry.project_id == project_id)
    if environment is not None:
        stmt = stmt.where(about_environment(environment))
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.at < until)
    return Listing(session, stmt, AuditEntry.id)


def streamed(session: Session, listing_: Listing) -> Iterator[AuditEntry]:
    """Every entry of a listing, read in batches (an export of the whole log stays small)."""
    yield from session.scalars(listing_.statement.execution_options(yield_per=500))


def _subject(kind: str, ids: Any) -> Any:
    return and_(AuditEntry.subject_type == kind,
                AuditEntry.subject_id.in_(select(cast(ids.c[0], String))))


def about_environment(name: str) -> Any:
    """Entries about environments of this name (any project), the promotions and deployments
    into them, and the emergency stops on the name."""
    envs = select(Environment.id).where(Environment.name == name)
    return or_(
        _subject("environment", envs.subquery()),
        _subject("promotion", select(Promotion.id)
                 .where(Promotion.environment_id.in_(envs)).subquery()),
        _subject("deployment", select(Deployment.id)
                 .where(Deployment.environment_id.in_(envs)).subquery()),
        _subject("stop", select(EmergencyStop.id)
                 .where(EmergencyStop.environment == name).subquery()),
    )
