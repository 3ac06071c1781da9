"""Small helpers for driving an image through the API in tests."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select

from promotion_service import db

REPO = "registry.example.com/group/app"
PROJECT = "group/app"


def digest(n: int) -> str:
    """A valid, distinct digest per n."""
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def ref(n: int, environment: str | None = None) -> dict[str, Any]:
    """The JSON naming image n (and an environment)."""
    body = {"repository": REPO, "digest": digest(n)}
    if environment:
        body["environment"] = environment
    return body


def register(api: Any, n: int, *, scan: dict[str, int] | None = None, as_: str = "ci-bot",
             **fields: Any) -> dict[str, Any]:
    """Register image n (and record a clean scan unless told otherwise)."""
    resp = api.post("/images", json=ref(n) | {"project": PROJECT, "commit_sha": "ab" * 20}
                    | fields, as_=as_)
    assert resp.status_code in (200, 201), resp.json
    counts = {"critical": 0, "high": 0} if scan is None else scan
    assert api.post("/scans", json=ref(n) | {"counts": counts}).status_code == 201
    return resp.json


_releases = itertools.count(1)


def record_id(n: int) -> str:
    """A target record id like the deploy step's (time-ordered, unique)."""
    return f"20260101T000000{next(_releases):03d}Z-{n:04x}"


def deploy(api: Any, n: int, environment: str, state: str = "succeeded",
           **fields: Any) -> dict[str, Any]:
    """Report a deployment of image n, with a record id as docker-cd deploy sends it."""
    body = ref(n, environment) | {"state": state, "record_id": record_id(n)} | fields
    resp = api.post("/deployments", json=body)
    assert resp.status_code == 201, resp.json
    return resp.json


def verify(api: Any, n: int, environment: str, passed: bool = True) -> dict[str, Any]:
    """Report a verification of image n."""
    resp = api.post("/verifications", json=ref(n, environment) | {"passed": passed})
    assert resp.status_code == 201, resp.json
    return resp.json


def gate(api: Any, n: int, environment: str, as_: str = "ci-bot", **params: Any) -> Any:
    """Ask the gate about image n."""
    return api.get("/gate", query_string=ref(n, environment) | params, as_=as_)


# For races of 50 threads in one app: a pooled connection per thread (as a server has one per
# request it runs at once) and waits as long as the race takes. Who wins is what such a test
# is about; a wait longer than PROMOTION_DB_TIMEOUT is a 503 by design (test_database_trouble).
RACE_SETTINGS = {"DB_POOL_SIZE": 17, "DB_TIMEOUT": 30.0}  # 17 + 2 x 17 overflow >= 50


def registrations(api: Any) -> list[tuple[str, str]]:
    """(action, subject id) of every registration (image, release) in the audit log, sorted."""
    entries = api.get("/audit", query_string={"page_size": 100}, as_="rm").json
    return sorted((e["action"], e["subject_id"]) for e in entries
                  if e["action"].endswith(".registered"))


def codes(resp: Any) -> list[str]:
    """Reason codes of a gate answer or a refusal."""
    return [r["code"] for r in resp.json["reasons"]]


def promotions(api: Any, **filters: Any) -> list[dict[str, Any]]:
    """Promotions, newest first."""
    resp = api.get("/promotions", query_string=filters)
    assert resp.status_code == 200, resp.json
    return resp.json


SOAKED = timedelta(minutes=11)  # longer than staging's min_soak in the tests' policy


def soak(app: Any) -> list[int]:
    """Let the staging soak time pass and run the worker's periodic re-evaluation: the
    promotions it created."""
    from promotion_service.db.models import Verification
    from promotion_service.services.promotion import reevaluate_waiting

    age(app, Verification, SOAKED)
    with db.session_for(app) as session:
        return reevaluate_waiting(session)


def promoted_to_staging(api: Any, app: Any, n: int, **registration: Any) -> int:
    """Image n registered, deployed and verified in test, soaked: its staging promotion."""
    register(api, n, **registration)
    deploy(api, n, "test")
    verify(api, n, "test")
    [promotion_id] = soak(app)
    return promotion_id


def age(app: Any, model: Any, by: timedelta, column: str = "created_at") -> None:
    """Move every row's timestamp into the past (time passing, without waiting)."""
    with db.session_for(app) as session:
        for row in session.scalars(select(model)):
            if getattr(row, column) is not None:
                setattr(row, column, getattr(row, column) - by)


@contextmanager
def sent_statements(app: Any) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (with their parameters) the app's engine sends inside the block."""
    seen: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    engine = db.engine_of(app)
    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", keep)
