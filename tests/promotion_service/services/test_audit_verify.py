"""`audit verify` reads back what the service wrote: every value a JSON column can hold
hashes the same read from SQLite or PostgreSQL as when it was written."""

from __future__ import annotations

import math

from sqlalchemy import func, insert, select

from promotion_service import db
from promotion_service.db.models import AuditEntry
from promotion_service.domain.actor import Actor
from promotion_service.domain.audit_chain import EDITED
from promotion_service.services import audit
from promotion_service.store import audit as audit_store
from tests.promotion_service.domain.test_audit_chain import AWKWARD


def finite(value):
    """False for a value holding NaN or an infinity (PostgreSQL's json type refuses them)."""
    if isinstance(value, dict):
        return all(map(finite, value.values()))
    if isinstance(value, list):
        return all(map(finite, value))
    return not isinstance(value, float) or math.isfinite(value)


def test_entries_with_awkward_values_verify_on_both_databases(app):
    values = [v for v in AWKWARD if finite(v) or db.engine_of(app).name != "postgresql"]
    actors = [Actor("gitlab:josé", "admin", request_id="r-1", source_ip="::1"),
              Actor("ci", "ci")]
    with db.session_for(app) as session:
        for n, value in enumerate(values):
            audit_store.append(session, actors[n % 2], "test.awkward", "image", n,
                               before=value, after={"value": value, "n": n})
            audit_store.append(session, actors[n % 2], "test.awkward", "image", None,
                               after=value)
    with db.session_for(app, write=False) as session:
        verdict = audit.verify(session)
    assert (verdict.count, verdict.problem) == (2 * len(values), None)


def test_a_break_early_in_a_long_log_leaves_the_session_usable(app):
    """The walk stops at the first break, with most of a long log still streaming in; the
    transaction goes on working (the audit page lists entries after verifying)."""
    entries = [{"at": "2026-01-01T00:00:00", "actor": "a", "role": "ci", "action": "x",
                "subject_type": "image", "subject_id": str(n), "after": {"n": n},
                "prev_hash": f"{n:064x}", "hash": f"{n + 1:064x}"} for n in range(30_000)]
    with db.session_for(app) as session:
        session.execute(insert(AuditEntry), entries)
    with db.session_for(app, write=False) as session:
        verdict = audit.verify(session)
        assert (verdict.problem.entry_id, verdict.problem.problem) == (1, EDITED)
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 30_000
