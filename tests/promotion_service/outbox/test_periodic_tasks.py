"""The worker's periodic checks while other writers hold the writers' lock (a burst being
recorded, a big transaction), and when two workers run them at once: on both databases."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from promotion_service import db
from promotion_service.db.gitlab_models import WebhookDelivery
from promotion_service.db.models import Outbox, Promotion, Verification, utcnow
from promotion_service.gitlab import events
from promotion_service.outbox import worker
from tests.promotion_service.helpers import SOAKED, age, deploy, register, verify

# a short wait for the writers' lock keeps each test quick
pytestmark = pytest.mark.parametrize("app_settings", [{"DB_TIMEOUT": 0.5}])
TASK_LOGGER = "promotion_service.outbox.worker"


def hold_the_writers_lock(app):
    """Another writer's open transaction (as a dispatcher recording a burst holds it)."""
    return db.session_for(app)


def worker_records(caplog):
    return [r for r in caplog.records if r.name == TASK_LOGGER]


def test_the_checks_with_nothing_to_do_do_not_wait_for_another_writer(app, caplog):
    tick = worker.periodic_tasks(app)
    with hold_the_writers_lock(app), caplog.at_level(logging.INFO, TASK_LOGGER):
        tick()
    assert worker_records(caplog) == []


def test_a_check_kept_from_writing_says_why_in_one_line_and_writes_on_the_next_tick(
        app, caplog):
    with db.session_for(app) as session:
        session.add(WebhookDelivery(key="old", event="Pipeline Hook",
                                    received_at=utcnow() - timedelta(days=8)))
    tick = worker.periodic_tasks(app)
    with hold_the_writers_lock(app), caplog.at_level(logging.INFO, TASK_LOGGER):
        tick()
    [record] = worker_records(caplog)
    assert record.levelno == logging.WARNING
    assert record.exc_info is None  # an expected wait: no traceback
    message = record.getMessage()
    assert "old webhook delivery keys" in message
    # the reason: the driver's exception type and its message (SQLite's or PostgreSQL's)
    assert ("OperationalError: database is locked" in message
            or "LockNotAvailable: canceling statement due to lock timeout" in message), message
    assert "next tick" in message
    assert "\n" not in message
    with db.session_for(app, write=False) as session:
        assert session.scalars(select(WebhookDelivery.key)).all() == ["old"]  # nothing lost

    caplog.clear()
    with caplog.at_level(logging.INFO, TASK_LOGGER):
        tick()
    assert worker_records(caplog) == []
    with db.session_for(app, write=False) as session:
        assert session.scalars(select(WebhookDelivery.key)).all() == []


def test_a_check_that_breaks_logs_its_error_with_the_reason_and_the_others_still_run(
        app, caplog, monkeypatch):
    def broken(session, keep_days):
        raise RuntimeError("the store lost its marbles")

    monkeypatch.setattr(events, "prune_deliveries", broken)
    monkeypatch.setattr(worker, "close_abandoned", lambda *a: ran.append("close_abandoned"))
    ran = []
    with caplog.at_level(logging.INFO, TASK_LOGGER):
        worker.periodic_tasks(app)()
    [record] = worker_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.getMessage() == ("periodic task failed: old webhook delivery keys: "
                                   "RuntimeError: the store lost its marbles")
    assert record.exc_info is not None  # a bug: its traceback is in the log
    assert ran == ["close_abandoned"]  # the later checks ran


def test_two_workers_ticking_at_once_promote_a_soaked_release_once(api, app):
    register(api, 1)
    deploy(api, 1, "test")
    verify(api, 1, "test")
    age(app, Verification, SOAKED)
    ticks = [worker.periodic_tasks(app) for _ in range(2)]
    start = threading.Barrier(2)

    def run(tick):
        start.wait()
        tick()

    threads = [threading.Thread(target=run, args=(tick,)) for tick in ticks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with db.session_for(app, write=False) as session:
        assert session.scalar(select(func.count()).select_from(Promotion)) == 1
        assert session.scalar(select(func.count()).select_from(Outbox)) == 1


def test_a_soaked_release_waiting_behind_another_writer_is_promoted_on_the_next_tick(
        api, app, caplog):
    register(api, 1)
    deploy(api, 1, "test")
    verify(api, 1, "test")
    age(app, Verification, SOAKED)
    tick = worker.periodic_tasks(app)
    with hold_the_writers_lock(app), caplog.at_level(logging.INFO, TASK_LOGGER):
        tick()
    [record] = worker_records(caplog)
    assert record.levelno == logging.WARNING
    assert "promotions waiting for time" in record.getMessage()
    tick()
    tick()
    with db.session_for(app, write=False) as session:
        assert session.scalar(select(func.count()).select_from(Promotion)) == 1
        assert session.scalar(select(func.count()).select_from(Outbox)) == 1
