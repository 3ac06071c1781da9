"""The engine, tuned per backend: SQLite in WAL mode with IMMEDIATE write transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError

WRITE_OPTION = "promotion_write"  # execution option of a connection that begins a write
_PING = ContextVar("promotion_pool_ping", default=True)


@contextmanager
def without_ping() -> Iterator[None]:
    """Check connections out without the liveness round trip: for reads that retry once on
    a dropped connection instead (the gate answers in one round trip)."""
    token = _PING.set(False)
    try:
        yield
    finally:
        _PING.reset(token)


def make_engine(url: str, *, timeout: float = 3.0, pool_size: int = 5) -> Engine:
    """An engine tuned per backend: SQLite in WAL mode with IMMEDIATE write transactions.

    `timeout` bounds every wait for the database (SQLite's write lock; PostgreSQL's connect,
    locks and the pool), so a locked or unreachable database fails fast (the API answers 503).
    Pooled connections are checked before use: a restarted server costs no failed request
    (hot reads skip the check and retry once instead: sessions.read).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            connect_args = {"connect_timeout": max(1, round(timeout)),
                            "options": f"-c lock_timeout={int(timeout * 1000)}"}
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2,
                               pool_recycle=300, pool_timeout=timeout,
                               connect_args=connect_args)

        if engine.dialect.driver == "psycopg":
            event.listen(engine, "connect", _reuse_descriptions)

        @event.listens_for(engine, "checkout")
        def _ping(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
            # the pool's pre-ping (SQLAlchemy's own ping), unless the caller retries instead
            if _PING.get():
                try:
                    engine.dialect.do_ping(dbapi_conn)
                except engine.dialect.loaded_dbapi.Error as exc:
                    raise DisconnectionError() from exc  # the pool connects afresh

        return engine
    # An in-memory database lives in one connection (SingletonThreadPool): no pool to wait on.
    pool_args = {} if parsed.database in (None, "", ":memory:") else {"pool_timeout": timeout}
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeout},
                           **pool_args)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                       f"busy_timeout={int(timeout * 1000)}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer takes the write lock up front, so it waits (busy_timeout) instead of
        # failing on a stale snapshot. Readers run each statement in autocommit: one round
        # trip less on the gate's path, and they never block anyone.
        if conn.get_execution_options().get(WRITE_OPTION):
            begin_immediate(conn.connection.dbapi_connection)

    return engine


def _reuse_descriptions(dbapi_conn: Any, _record: Any) -> None:
    from .described import DescribedCursor

    dbapi_conn.cursor_factory = DescribedCursor


def begin_immediate(dbapi_connection: Any) -> None:
    """SQLite: take the write lock now (waiting up to the busy timeout).

    Issued on the driver's connection, below SQLAlchemy, so its error is wrapped here the way
    SQLAlchemy wraps its own: a locked database is an OperationalError like any other.
    """
    try:
        dbapi_connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
