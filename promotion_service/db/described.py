"""psycopg's cursor, reusing the description of a result shaped like an earlier one.

psycopg builds `cursor.description` afresh on every execution, a Python object per column,
and SQLAlchemy reads it on every execution (to check the statement returned rows; its
result metadata is cached with the compiled statement). For the gate's 40 columns that was
the largest single cost of running its query (benchmarks/gate_postgres.py).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.pq import ExecStatus

_SHAPES = 512  # distinct result shapes remembered per process (the service has a few dozen)
_described: dict[tuple[Any, ...], list[Any]] = {}


class DescribedCursor(psycopg.Cursor):
    """A cursor whose description is built once per result shape (names, types, modifiers:
    all a description says)."""

    @property
    def description(self) -> list[Any] | None:
        result = self.pgresult
        if result is None or result.status != ExecStatus.TUPLES_OK:
            return super().description
        fields = range(result.nfields)
        shape = (tuple(map(result.fname, fields)), tuple(map(result.ftype, fields)),
                 tuple(map(result.fmod, fields)))
        columns = _described.get(shape)
        if columns is None:
            if len(_described) >= _SHAPES:
                _described.clear()
            columns = _described[shape] = super().description or []
        return list(columns)
