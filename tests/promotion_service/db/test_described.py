"""The PostgreSQL cursor that reuses descriptions still describes each result as it is."""

from __future__ import annotations

from sqlalchemy import text

from promotion_service.db import make_engine
from promotion_service.db.described import DescribedCursor


def test_each_result_is_described_as_it_is(postgres_url):
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE shapes (a integer, b text)"))
            conn.execute(text("INSERT INTO shapes VALUES (1, 'one')"))
            driver = conn.connection.driver_connection
            assert isinstance(driver.cursor(), DescribedCursor)

            def described(sql: str) -> list[tuple[str, int]]:
                return [(c.name, c.type_code) for c in driver.execute(sql).description]

            first = described("SELECT a, b FROM shapes")
            assert first == described("SELECT a, b FROM shapes")  # the same shape, reused
            assert described("SELECT b, a FROM shapes") == first[::-1]
            assert described("SELECT a AS b, b AS a FROM shapes") == [
                ("b", first[0][1]), ("a", first[1][1])]
            # the same statement over a changed table: its new types
            conn.execute(text("ALTER TABLE shapes ALTER COLUMN a TYPE bigint"))
            assert described("SELECT a, b FROM shapes")[0][1] != first[0][1]
            # and SQLAlchemy's results read by name as before
            row = conn.execute(text("SELECT b AS name, a AS number FROM shapes")).one()
            assert (row.name, row.number) == ("one", 1)
            assert driver.execute("SET search_path TO public").description is None
    finally:
        engine.dispose()
