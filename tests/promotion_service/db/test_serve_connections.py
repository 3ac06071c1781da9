"""`serve` keeps its PostgreSQL connections: a steady load opens none.

PostgreSQL keeps prepared statements and their plans per connection. A connection opened
beyond the pool is closed after its request, so the next new one prepares and plans the
gate's statement again: under load that planning, not the gate's query, was most of the
database's work (benchmarks/gate_postgres.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.promotion_service.helpers import ref, register
from tests.support import free_port, wait_for_http

THREADS = 8  # serve's default


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: SQLite has no server-side plans to lose."""
    return postgres_url


def sessions_opened(url: str) -> int:
    """Connections ever made to this test's database (closed ones are counted at exit)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            time.sleep(1.5)  # other backends report their counts at most once a second
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            return conn.execute(text("SELECT sessions FROM pg_stat_database "
                                     "WHERE datname = current_database()")).scalar_one()
    finally:
        engine.dispose()


def test_a_steady_load_opens_no_database_connections(api, app, tokens, database_url,
                                                     tmp_path):
    register(api, 1)
    port = free_port()
    log = tmp_path / "service.log"
    env = dict(os.environ, PROMOTION_DATABASE_URL=database_url,
               PROMOTION_POLICY_FILE=app.config["POLICY_FILE"])
    env.pop("PROMOTION_DB_POOL_SIZE", None)
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "promotion_service", "serve", "--bind",
                                   f"127.0.0.1:{port}", "--threads", str(THREADS)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=out)
    url = f"http://127.0.0.1:{port}/api/v1/gate"
    headers = {"Authorization": f"Bearer {tokens['ci-bot']}"}

    def ask(_: int) -> int:
        with requests.Session() as client:
            return [client.get(url, params=ref(1, "test"), headers=headers, timeout=60)
                    .status_code for _ in range(15)].count(200)

    def load() -> int:  # every request thread busy at once
        with ThreadPoolExecutor(THREADS) as pool:
            return sum(pool.map(ask, range(THREADS)))

    try:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/ready", timeout=30, ok=(200,))
        except RuntimeError as e:
            raise AssertionError(f"{e}\n{log.read_text(errors='replace')[-2000:]}") from None
        assert load() == THREADS * 15  # the pool fills up
        before = sessions_opened(database_url)
        assert load() == THREADS * 15
        opened = sessions_opened(database_url) - before
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert opened == 1, f"{opened - 1} new connections under a steady load"  # 1: ours
