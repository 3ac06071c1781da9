"""The PostgreSQL a benchmark runs on: the one given, else a throw-away server of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, make_url, text


@contextmanager
def postgres_url(given: str | None) -> Iterator[str]:
    """`given` as is; without one, start a server (initdb, 127.0.0.1) and remove it after."""
    if given is not None:
        yield given
        return
    from tests.promotion_service.postgres import start_postgres

    server = start_postgres()
    try:
        yield server.url()
    finally:
        server.stop()


def fresh_database(admin: Engine, server: str, name: str) -> str:
    """The URL of database `name` on the server, dropped first if it was there (`admin`: an
    AUTOCOMMIT engine on that server)."""
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    return make_url(server).set(database=name).render_as_string(hide_password=False)
