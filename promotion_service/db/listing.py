"""Rows for responses: listings paged by the database, rows seen with joined-in fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session


class Extended:
    """An ORM object seen with extra attributes (names joined in, a computed status)."""

    def __init__(self, obj: Any, **extra: Any) -> None:
        self._obj, self._extra = obj, extra

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__["_extra"]
        return extra[name] if name in extra else getattr(self.__dict__["_obj"], name)


class Listing:
    """A select the API pages through: OFFSET/LIMIT and COUNT run in the database.

    Without `shape` each page holds the first column's objects; with it, `shape(row)` of
    each row (to join names in without a query per row).
    """

    def __init__(self, session: Session, statement: Select[Any],
                 shape: Callable[[Row[Any]], Any] | None = None) -> None:
        self.session, self.statement, self.shape = session, statement, shape

    def page(self, offset: int, limit: int) -> list[Any]:
        """The rows of one page, shaped."""
        result = self.session.execute(self.statement.offset(offset).limit(limit))
        if self.shape is None:
            return list(result.scalars())
        return [self.shape(row) for row in result]

    def count(self) -> int:
        """How many rows the whole listing has."""
        return self.session.scalar(select(func.count()).select_from(
            self.statement.order_by(None).subquery())) or 0
