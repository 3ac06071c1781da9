"""INSERT unless the row's unique key is taken: the database settles who registered it first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_DIALECTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_STATEMENTS: dict[tuple[Any, ...], Insert] = {}  # built once: registration is on every pipeline


def insert_if_new(session: Session, table: Table, key: Sequence[str],
                  values: dict[str, Any]) -> int | None:
    """The new row's id, or None when a row with the same `key` (a unique constraint's
    columns) exists: INSERT ... ON CONFLICT DO NOTHING.

    A conflict is not an error, so the caller's transaction stays usable (PostgreSQL aborts a
    transaction on an IntegrityError) and a concurrent loser simply reads the winner's row.
    """
    connection = session.connection()
    dialect = connection.dialect.name
    statement = _STATEMENTS.get((dialect, table.name, *key))
    if statement is None:
        statement = (_DIALECTS[dialect](table).on_conflict_do_nothing(index_elements=list(key))
                     .returning(table.c.id))
        _STATEMENTS[(dialect, table.name, *key)] = statement
    return connection.execute(statement, values).scalar()
