"""The audit page at any length of log: it shows the latest full verdict the worker (or `audit
verify`) stored and checks only the entries written since; a break in those shows at once, a
break in older entries with the next full verify; its count stops at 10,000+."""

from __future__ import annotations

import html
import logging
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from promotion_service import db
from promotion_service.cli import main
from promotion_service.db.models import AuditEntry, AuditVerdict
from promotion_service.domain import audit_checkpoint
from promotion_service.domain.actor import Actor
from promotion_service.outbox import worker
from promotion_service.services import audit
from promotion_service.store import audit as audit_store
from tests.promotion_service.helpers import register
from tests.promotion_service.test_cli import drop_append_only_triggers

HOUR = 3600


def append(app, count: int) -> None:
    """`count` more entries, chained as the service chains them (one executemany)."""
    with db.session_for(app) as session:
        audit_store.append_many(session, Actor.system("tests"), [
            ("stop.checked", "stop", n, None, {"n": n}) for n in range(count)])


def verify_in_full(app) -> bool:
    """The worker's full verify, in this thread; whether it was due."""
    return worker.AuditVerifier(app, wait=True).start_if_due()


def verdicts(app) -> list[AuditVerdict]:
    with db.session_for(app, write=False) as session:
        return list(session.scalars(select(AuditVerdict).order_by(AuditVerdict.id)))


def last_entry_id(app) -> int:
    with db.session_for(app, write=False) as session:
        return session.scalar(select(func.max(AuditEntry.id)))


def age_verdicts(app, seconds: float) -> None:
    with db.session_for(app) as session:
        for verdict in session.scalars(select(AuditVerdict)):
            verdict.checked_at -= timedelta(seconds=seconds)


def tamper(app, statement: str) -> None:
    with db.session_for(app) as session:
        drop_append_only_triggers(session)  # whoever does this owns the tables
        session.execute(text(statement))


def chain_line(page: str) -> str:
    """The page's sentence about the chain, as a person reads it."""
    found = re.search(r'<p class="[a-z]+ chain"[^>]*>(.*?)</p>', page, re.S)
    assert found, page
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


@pytest.fixture
def hashed(monkeypatch):
    """How many entries were hashed (each one the walk checks is hashed once)."""
    count = [0]
    canonical = audit_checkpoint.stored_canonical

    def counted(fields):
        count[0] += 1
        return canonical(fields)

    monkeypatch.setattr(audit_checkpoint, "stored_canonical", counted)
    return count


def test_the_page_shows_the_stored_verdict_and_checks_only_the_entries_since(
        api, app, browser, hashed):
    register(api, 1)
    append(app, 200)
    assert verify_in_full(app)
    [verdict] = verdicts(app)
    assert verdict.problem is None and verdict.through_id == last_entry_id(app)
    register(api, 2)  # entries written after the full verify
    alice = browser("alice")
    since = last_entry_id(app) - verdict.through_id
    hashed[0] = 0
    line = chain_line(alice.get("/ui/audit").text)
    # the page hashed the entries written since, not the 200 and more before them
    assert hashed[0] == since < 10
    at = verdict.checked_at.strftime("%Y-%m-%d %H:%M")
    assert line == (f"The chain verifies: {verdict.entries} entries verified in full at {at} "
                    f"UTC; the {since} entries since checked now, none changed.")


def test_without_a_stored_verdict_the_page_checks_the_whole_short_log_and_says_so(
        api, app, browser):
    register(api, 1)
    line = chain_line(browser("alice").get("/ui/audit").text)
    assert line.startswith("The chain verifies: ") and line.endswith(
        "none changed or missing, checked in full now (no full verification stored yet).")


def test_an_entry_edited_after_the_full_verify_shows_the_chain_broken(api, app, browser):
    register(api, 1)
    assert verify_in_full(app)
    register(api, 2)
    newest = last_entry_id(app)
    tamper(app, f"UPDATE audit_log SET actor = 'mallory' WHERE id = {newest}")
    page = browser("alice").get("/ui/audit").text
    assert 'class="error chain" role="alert"' in page
    assert chain_line(page).startswith(
        f"The chain is broken at entry {newest}: its content does not match its hash "
        "(it was edited) (found now")


def test_the_entry_the_full_verify_ended_on_edited_since_shows_the_chain_broken(
        api, app, browser):
    register(api, 1)
    assert verify_in_full(app)
    [verdict] = verdicts(app)
    # edited and rehashed: the chain after it would still link, but its hash is not the one
    # the full verify recorded
    tamper(app, f"UPDATE audit_log SET actor = 'mallory', hash = '{'e' * 64}' "
                f"WHERE id = {verdict.through_id}")
    line = chain_line(browser("alice").get("/ui/audit").text)
    assert line.startswith(f"The chain is broken at entry {verdict.through_id}: the full "
                           "verification ended on this entry, and its hash is no longer")


def test_an_old_entry_edited_is_found_by_the_next_full_verify_and_the_page_then_shows_it(
        api, app, browser, caplog):
    register(api, 1)
    register(api, 2)
    assert verify_in_full(app)
    tamper(app, "UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    alice = browser("alice")
    # until the next full verify the page claims only what was checked: the verdict of then
    assert "verified in full at" in chain_line(alice.get("/ui/audit").text)
    assert not verify_in_full(app)  # not due yet: the verdict is fresh
    age_verdicts(app, HOUR)
    caplog.clear()
    with caplog.at_level(logging.INFO, "promotion_service.outbox.worker"):
        assert verify_in_full(app)
    [record] = [r for r in caplog.records if r.name == "promotion_service.outbox.worker"]
    assert record.levelno == logging.ERROR and "entry 2: its content does not match" in \
        record.getMessage()
    latest = verdicts(app)[-1]
    assert latest.problem_entry_id == 2
    page = alice.get("/ui/audit").text
    assert 'class="error chain" role="alert"' in page
    at = latest.checked_at.strftime("%Y-%m-%d %H:%M")
    assert chain_line(page).startswith(
        "The chain is broken at entry 2: its content does not match its hash (it was edited) "
        f"(found by the full verification of {at} UTC")


def test_the_worker_verifies_in_full_on_its_schedule_in_a_thread_of_its_own(api, app):
    register(api, 1)
    verifier = worker.AuditVerifier(app)
    tick = worker.periodic_tasks(app, verifier)
    tick()
    verifier.thread.join(30)
    [first] = verdicts(app)
    assert first.problem is None and first.entries == last_entry_id(app)
    tick()  # within PROMOTION_AUDIT_VERIFY_SECONDS (3600) of the last: not due
    assert verifier.thread is not None and not verifier.thread.is_alive()
    assert len(verdicts(app)) == 1
    age_verdicts(app, HOUR)
    register(api, 2)
    tick()
    verifier.thread.join(30)
    assert [v.entries for v in verdicts(app)] == [first.entries, last_entry_id(app)]


@pytest.mark.parametrize("app_settings", [{"DB_TIMEOUT": 0.5}])
def test_writers_go_on_while_the_full_verify_walks_and_it_stores_what_it_walked(
        api, app, monkeypatch):
    register(api, 1)
    walking, go_on = threading.Event(), threading.Event()
    canonical = audit_checkpoint.stored_canonical

    def paused(fields):
        if not walking.is_set():  # the walk stops at its first entry until told to go on
            walking.set()
            go_on.wait(30)
        return canonical(fields)

    monkeypatch.setattr(audit_checkpoint, "stored_canonical", paused)
    verifier = worker.AuditVerifier(app)
    assert verifier.start_if_due()
    assert walking.wait(30)
    walked = last_entry_id(app)
    register(api, 2)  # a write while the walk is in the middle: nobody waits for it
    go_on.set()
    verifier.thread.join(30)
    [verdict] = verdicts(app)
    assert verdict.problem is None and verdict.through_id == walked < last_entry_id(app)


@pytest.mark.parametrize("app_settings", [{"AUDIT_VERIFY_SECONDS": 0}])
def test_a_verify_interval_of_0_turns_the_full_verify_off(api, app):
    register(api, 1)
    worker.periodic_tasks(app, worker.AuditVerifier(app))()
    assert not verify_in_full(app)
    assert verdicts(app) == []


def test_audit_verify_on_the_command_line_stores_its_verdict_for_the_page(
        api, app, browser, monkeypatch, capsys):
    register(api, 1)
    monkeypatch.setenv("PROMOTION_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("PROMOTION_POLICY_FILE", app.config["POLICY_FILE"])
    assert main(["audit", "verify"]) == 0
    [verdict] = verdicts(app)
    assert verdict.entries == last_entry_id(app) and verdict.problem is None
    assert "verified in full at" in chain_line(browser("alice").get("/ui/audit").text)


def test_past_10000_entries_the_page_says_10000_plus_checks_10000_and_pages_on(
        api, app, browser, hashed):
    append(app, 10_050)
    alice = browser("alice")
    hashed[0] = 0
    page = alice.get("/ui/audit").text
    assert hashed[0] == 10_000
    assert chain_line(page) == (
        "Never verified in full: the first 10,000 entries checked now, none changed; the rest "
        "waits for a full verification (the worker's, or promotion-service audit verify).")
    assert "10,000+ entries" in page
    assert 'page=2">older</a>' in page
    last = alice.get("/ui/audit?page=101").text  # entries 10,001 to 10,051 (with sign-in's)
    assert "older</a>" not in last and "newer</a>" in last
    assert verify_in_full(app)
    register(api, 1)
    hashed[0] = 0
    line = chain_line(alice.get("/ui/audit").text)
    assert hashed[0] < 10 and line.startswith("The chain verifies: 10,")


def test_without_a_verdict_a_log_past_the_cap_is_checked_against_the_checkpoints_within_it(
        api, app, tmp_path):
    register(api, 1)
    register(api, 2)
    anchor = audit.Anchor(tmp_path / "checkpoints.jsonl", b"k" * 32)
    with db.session_for(app, write=False) as session:
        audit.write_checkpoint(session, anchor)  # counts every entry so far
        whole = audit.chain_state(session, anchor)
        capped = audit.chain_state(session, anchor, limit=3)
    assert whole.problem is None and whole.checkpoints_now == 1 and not whole.more
    # the checkpoint counts more entries than the page walked: not "the newest were removed"
    assert capped.problem is None and capped.more
    assert (capped.checked_now, capped.checkpoints_now) == (3, 0)
