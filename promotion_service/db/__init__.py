"""The database: engine and sessions, write transactions, tables, schema migrations.

The app, the CLI and the worker reach it through these names; the tables are in
db.models (the service's) and db.gitlab_models (the GitLab integration's).
"""

from .engine import make_engine
from .inserts import insert_if_new
from .sessions import (
    DATABASE_BUSY,
    begin_write,
    engine_of,
    get_session,
    init_app,
    is_postgres,
    read,
    read_connection,
    session_for,
    take_write_lock,
    write_transaction,
)

__all__ = [
    "DATABASE_BUSY",
    "begin_write",
    "engine_of",
    "get_session",
    "init_app",
    "insert_if_new",
    "is_postgres",
    "make_engine",
    "read",
    "read_connection",
    "session_for",
    "take_write_lock",
    "write_transaction",
]
