"""The database: one engine per app, request-scoped sessions, serialised writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from .config import is_on

_WRITE = {"promotion_write": True}


def make_engine(url: str, *, busy_timeout: float = 30.0, pool_size: int = 5,
                pre_ping: bool = False) -> Engine:
    """An engine tuned per backend: SQLite in WAL mode with IMMEDIATE write transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # no ping per checkout by default (one round trip less per request); connections are
        # recycled after 5 minutes instead
        return create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2,
                             pool_pre_ping=pre_ping, pool_recycle=300)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": busy_timeout}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                       f"busy_timeout={int(busy_timeout * 1000)}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer takes the write lock up front, so it waits (busy_timeout) instead of
        # failing on a stale snapshot. Readers run each statement in autocommit: one round
        # trip less on the gate's path, and they never block anyone.
        if conn.get_execution_options().get("promotion_write"):
            conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")

    return engine


def is_postgres(session: Session) -> bool:
    """Backend-specific SQL (advisory locks) is chosen with this."""
    return session.get_bind().dialect.name == "postgresql"


WRITE_LOCK = 0x70726F6D  # PostgreSQL advisory lock key that orders writers (and the audit chain)


def begin_write(session: Session) -> None:
    """Make the session's transaction one that may write; writers go one at a time.

    SQLite: BEGIN IMMEDIATE (reads before it ran in autocommit). PostgreSQL: a
    transaction-scoped advisory lock, taken before any row lock, so writers never deadlock
    and audit entries chain in commit order. The connection is kept: no pool round trip.
    """
    if not session.in_transaction():
        connection = session.connection(execution_options=_WRITE)
    else:
        connection = session.connection()
        dbapi = connection.connection.dbapi_connection
        if connection.dialect.name == "sqlite" and not dbapi.in_transaction:
            dbapi.execute("BEGIN IMMEDIATE")
    if connection.dialect.name == "postgresql":
        take_write_lock(session)


def take_write_lock(session: Session) -> None:
    """PostgreSQL: the advisory lock that orders writers, once per transaction."""
    transaction = session.get_transaction()
    if session.info.get("write_locked") is not transaction:
        session.connection().execute(_LOCK, {"key": WRITE_LOCK})
        session.info["write_locked"] = transaction


_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def init_app(app: Flask) -> None:
    """Create the engine for the app and close the request's session at teardown."""
    engine = make_engine(app.config["DATABASE_URL"],
                         busy_timeout=app.config.get("SQLITE_BUSY_TIMEOUT", 30.0),
                         pool_size=app.config.get("DB_POOL_SIZE", 5),
                         pre_ping=is_on(app.config.get("DB_PRE_PING")))
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
    per request); statements run in autocommit, so every read sees the database now.
    """
    session = g.get("db_session")
    if session is not None:
        return session.connection()
    if "db_connection" not in g:
        g.db_connection = engine_of(current_app).connect()
    return g.db_connection


@contextmanager
def session_for(app: Flask, write: bool = True) -> Iterator[Session]:
    """A session outside requests (CLI, worker, threads): commit on success, else roll back."""
    session = app.extensions["promotion_db"]()
    try:
        if write:
            begin_write(session)
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
    connection = g.pop("db_connection", None)
    if connection is not None:
        connection.close()
