"""The PostgreSQL a benchmark runs on: the one given, else a throw-away server of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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
