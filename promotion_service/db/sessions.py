"""Sessions: one per request (or per CLI/worker unit of work) and write transactions.

Every write goes through write_transaction: writers go one at a time (SQLite's write lock,
PostgreSQL's advisory lock), which also keeps the audit log's hash chain in commit order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from flask import Flask, current_app, g
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from .engine import WRITE_OPTION, begin_immediate, make_engine, without_ping
from .models import Base

WRITE_LOCK = 0x70726F6D  # PostgreSQL advisory lock key that orders writers (and the audit chain)
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
T = TypeVar("T")
_WRITING = "promotion_writing"  # session.info key: a write transaction is open and owned
# A locked, unreachable or overloaded database (a lock or pool wait past the timeout, a
# serialization failure, a dropped connection): the transaction changed nothing; ask again.
DATABASE_BUSY = (OperationalError, PoolTimeout)


def init_app(app: Flask) -> None:
    """Create the engine for the app and close the request's session at teardown.

    The ORM's mappers are configured now, not by the first query of each process: objects
    built without a query (a registered image, on the registration's Core path) need them.
    """
    Base.registry.configure()
    engine = make_engine(app.config["DATABASE_URL"], timeout=app.config.get("DB_TIMEOUT", 3.0),
                         pool_size=app.config.get("DB_POOL_SIZE", 5))
    app.extensions["promotion_db"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def engine_of(app: Flask) -> Engine:
    """The app's engine (for the CLI and benchmarks)."""
    return app.extensions["promotion_db"].kw["bind"]


def get_session() -> Session:
    """The request's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["promotion_db"]()
    return g.db_session


def read_connection() -> Connection:
    """The request's Core connection for hot read-only paths (the gate): no ORM session.

    Reuses the session's connection when the request already opened one (one pool checkout
    per request). Otherwise its statements run in autocommit (no BEGIN and ROLLBACK round
    trips), so every read sees the database now, and it skips the pool's ping: use `read`.
    """
    session = g.get("db_session")
    if session is not None:
        return session.connection()
    if "db_connection" not in g:
        with without_ping():
            connection = engine_of(current_app).connect()
        if connection.dialect.name == "postgresql":  # SQLite's reads run in autocommit already
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        g.db_connection = connection
    return g.db_connection


def read(query: Callable[[Connection], T]) -> T:
    """`query(read_connection())`, once more on a new connection if the server dropped the
    pooled one (a restart): read connections skip the pool's ping, a round trip per request."""
    try:
        return query(read_connection())
    except DBAPIError as exc:
        if not exc.connection_invalidated or "db_connection" not in g:
            raise
        g.pop("db_connection").close()
        return query(read_connection())


@contextmanager
def session_for(app: Flask, write: bool = True) -> Iterator[Session]:
    """A session outside requests (CLI, worker, threads): commit on success, else roll back."""
    session = app.extensions["promotion_db"]()
    try:
        if write:
            with write_transaction(session):
                yield session
        else:
            yield session
            session.commit()
    finally:
        session.close()


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """A use case's write: begun here, committed when it ends, rolled back if it raises.

    Inside a write transaction the same session already has open (a webhook delivery
    applying a deployment report, the worker's periodic tasks), it joins that one: the
    outermost owner commits.
    """
    if session.info.get(_WRITING):
        yield session
        return
    begin_write(session)
    session.info[_WRITING] = True
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(_WRITING, None)


def begin_write(session: Session) -> None:
    """Make the session's transaction one that may write; writers go one at a time.

    SQLite: BEGIN IMMEDIATE (reads before it ran in autocommit). PostgreSQL: a
    transaction-scoped advisory lock, taken before any row lock, so writers never deadlock
    and audit entries chain in commit order. The connection is kept: no pool round trip.
    """
    if not session.in_transaction():
        connection = session.connection(execution_options={WRITE_OPTION: True})
    else:
        connection = session.connection()
        dbapi = connection.connection.dbapi_connection
        if connection.dialect.name == "sqlite" and not dbapi.in_transaction:
            begin_immediate(dbapi)
    if connection.dialect.name == "postgresql":
        take_write_lock(session)


def is_postgres(session: Session) -> bool:
    """Backend-specific SQL (advisory locks, SKIP LOCKED) is chosen with this."""
    return session.get_bind().dialect.name == "postgresql"


def take_write_lock(session: Session) -> None:
    """PostgreSQL: the advisory lock that orders writers, once per transaction."""
    transaction = session.get_transaction()
    if session.info.get("write_locked") is not transaction:
        session.connection().execute(_LOCK, {"key": WRITE_LOCK})
        session.info["write_locked"] = transaction


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
    connection = g.pop("db_connection", None)
    if connection is not None:
        connection.close()
