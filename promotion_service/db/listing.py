"""Rows for responses: listings paged by the database, rows seen with joined-in fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session


class Extended:
    """An ORM object seen with extra attributes (names joined in, a computed status)."""

    def __init__(self, obj: Any, **extra: Any) -> None:
        self._obj, self._extra = obj, extra

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__["_extra"]
        return extra[name] if name in extra else getattr(self.__dict__["_obj"], name)


class Listing:
    """A select the API pages through, ordered by a unique key (an id), newest first unless
    `descending` is false. Pages are cut by the database: by OFFSET/LIMIT (O(rows) deep in
    a long history) with a COUNT that may stop at a bound, or by keyset (`key` past
    the last one seen, an index range read that costs the same at any depth).

    Without `shape` each page holds the first column's objects; with it, `shape(row)` of
    each row (to join names in without a query per row).
    """

    def __init__(self, session: Session, statement: Select[Any], key: InstrumentedAttribute[Any],
                 shape: Callable[[Row[Any]], Any] | None = None, *,
                 descending: bool = True) -> None:
        self.session, self.key, self.shape, self.descending = session, key, shape, descending
        self.statement = statement.order_by(key.desc() if descending else key)

    def page(self, offset: int, limit: int) -> list[Any]:
        """The rows of one page, shaped."""
        return self._rows(self.statement.offset(offset).limit(limit))

    def count(self, at_most: int | None = None) -> int:
        """How many rows the whole listing has; with `at_most`, at most that many (the first
        `at_most` keys in the listing's order: a read that stops there, however long the
        history)."""
        statement = (self.statement.order_by(None) if at_most is None
                     else self.statement.with_only_columns(self.key).limit(at_most))
        return self.session.scalar(select(func.count()).select_from(statement.subquery())) or 0

    def after(self, cursor: Any | None, limit: int) -> tuple[list[Any], Any | None]:
        """One keyset page: the rows whose key comes after `cursor` in the listing's order
        (from the first row when None), and the cursor of the next page (None on the last)."""
        statement = self.statement
        if cursor is not None:
            statement = statement.where(self.key < cursor if self.descending
                                        else self.key > cursor)
        rows = self._rows(statement.limit(limit + 1))  # one more: is there a next page?
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], getattr(rows[limit - 1], self.key.key)

    def _rows(self, statement: Select[Any]) -> list[Any]:
        result = self.session.execute(statement)
        if self.shape is None:
            return list(result.scalars())
        return [self.shape(row) for row in result]
