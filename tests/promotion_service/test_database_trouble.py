"""A locked or unreachable database: quick JSON 503s with Retry-After, reads that do not wait
for writers, nothing lost, and no failed request once the database is back."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, text

from docker_cd_local.service import PromotionService
from tests.promotion_service.postgres import start_postgres

REPO = "registry.example.com/group/app"
TIMEOUT = 2.0  # PROMOTION_DB_TIMEOUT for these services


def digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def register(service: PromotionService, n: int) -> requests.Response:
    return requests.post(f"{service.url}/api/v1/images", timeout=30,
                         headers={"Authorization": f"Bearer {service.tokens['ci']}"},
                         json={"project": "group/app", "repository": REPO, "digest": digest(n)})


def gate(service: PromotionService, n: int = 1) -> requests.Response:
    return requests.get(f"{service.url}/api/v1/gate", timeout=30,
                        headers={"Authorization": f"Bearer {service.tokens['ci']}"},
                        params={"repository": REPO, "digest": digest(n), "environment": "test"})


def assert_unavailable(resp: requests.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    assert int(resp.headers["Retry-After"]) > 0
    assert "retry" in resp.json()["message"] and resp.json()["request_id"]


def timed(call, *args):
    started = time.monotonic()
    resp = call(*args)
    return resp, time.monotonic() - started


def images_after_checking_the_audit_chain(service: PromotionService) -> int:
    """How many images the service holds; `audit verify` must pass first (it raises if not)."""
    service._cli("audit", "verify")
    listing = requests.get(f"{service.url}/api/v1/images", timeout=30,
                           headers={"Authorization": f"Bearer {service.tokens['admin']}"})
    assert listing.status_code == 200, listing.text
    return json.loads(listing.headers["X-Pagination"])["total"]


@pytest.fixture
def sqlite_service(tmp_path):
    service = PromotionService.start(tmp_path / "svc",
                                     settings={"PROMOTION_DB_TIMEOUT": str(TIMEOUT)})
    yield service
    service.stop()


def test_a_locked_sqlite_gives_quick_503s_and_the_gate_keeps_answering(sqlite_service):
    service = sqlite_service
    assert register(service, 1).status_code == 201
    locker = sqlite3.connect(str(service.root / "promotion.db"), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        refused, took = timed(register, service, 2)
        assert_unavailable(refused)
        assert took < TIMEOUT + 2, took

        # writers queue on the lock and fail; the gate's reads do not wait behind them
        done = threading.Event()
        outcomes: list[int] = []

        def keep_writing(worker: int) -> None:
            n = 100 + worker * 1000
            while not done.is_set():
                n += 1
                outcomes.append(register(service, n).status_code)

        with ThreadPoolExecutor(4) as pool:
            for worker in range(4):
                pool.submit(keep_writing, worker)
            time.sleep(0.5)
            answers = [timed(gate, service) for _ in range(10)]
            done.set()
        assert all(r.status_code == 200 for r, _ in answers)
        assert max(t for _, t in answers) < TIMEOUT / 2, [round(t, 3) for _, t in answers]
        assert set(outcomes) == {503}
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert register(service, 3).status_code == 201
    # images 1 and 3: no refused write left anything behind
    assert images_after_checking_the_audit_chain(service) == 2


@pytest.mark.postgres
def test_postgresql_down_then_back_loses_nothing_and_fails_nothing_after(tmp_path):
    server = start_postgres()
    try:
        admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE outage"))
        admin.dispose()
        service = PromotionService.start(tmp_path / "svc", settings={
            "PROMOTION_DATABASE_URL": server.url("outage"),
            "PROMOTION_DB_TIMEOUT": str(TIMEOUT)})
        try:
            assert register(service, 1).status_code == 201
            assert gate(service).status_code == 200  # the pool now holds live connections
            server.pause()
            for call in (register, gate):
                resp, took = timed(call, service, 2)
                assert_unavailable(resp)
                assert took < TIMEOUT + 3, (call.__name__, took)
            ready = requests.get(f"{service.url}/ready", timeout=30)
            assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
            server.resume()
            # every pooled connection died with the server: each is checked before use
            statuses = [register(service, n).status_code for n in range(10, 20)]
            statuses += [gate(service).status_code for _ in range(10)]
            assert statuses == [201] * 10 + [200] * 10
            assert images_after_checking_the_audit_chain(service) == 10 + 1
        finally:
            service.stop()
    finally:
        server.stop()
