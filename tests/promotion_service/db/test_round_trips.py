"""One round trip per gate answer on PostgreSQL: counted on the wire, not guessed.

libpq traces every message a pooled connection sends; each round trip ends with a `Query`
(simple protocol: BEGIN, ROLLBACK, the pool's ping) or a `Sync` (a statement with
parameters). A deploy job's question, with its ci token remembered, must cost one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from promotion_service import create_app, db
from promotion_service.domain.actor import Actor
from promotion_service.services import tokens as token_store
from tests.promotion_service.conftest import TOKENS, ApiClient
from tests.promotion_service.helpers import (
    deploy,
    gate,
    promoted_to_staging,
    sent_statements,
    verify,
)


@pytest.fixture
def traced(postgres_url: str, policy_file: str, tmp_path: Path) -> Iterator[Any]:
    """The service on PostgreSQL as deployed (ci tokens remembered), each connection traced."""
    app = create_app({"DATABASE_URL": postgres_url, "POLICY_FILE": policy_file,
                      "TESTING": True, "TOKEN_CACHE_SECONDS": 60})
    engine = db.engine_of(app)
    trace = (tmp_path / "libpq.trace").open("w")

    @event.listens_for(engine, "connect")
    def _trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.pgconn.trace(trace.fileno())

    app.config["trace_file"] = trace
    yield app
    engine.dispose()
    trace.close()


@pytest.fixture
def traced_api(traced: Any) -> ApiClient:
    made = {}
    with db.session_for(traced) as session:
        for name, (role, project) in TOKENS.items():
            made[name] = token_store.create(session, Actor.system("tests"), name=name,
                                            role=role, project=project)[1]
    return ApiClient(traced.test_client(), made)


@contextmanager
def round_trips(app: Any) -> Iterator[list[str]]:
    """The frontend messages that end a round trip, sent inside the block."""
    trace = app.config["trace_file"]
    trace.flush()
    start = Path(trace.name).stat().st_size
    ended: list[str] = []
    yield ended
    trace.flush()
    with open(trace.name, errors="replace") as read:
        read.seek(start)
        for line in read:
            fields = line.split("\t")
            if len(fields) > 3 and fields[1] == "F" and fields[3].startswith(("Query", "Sync")):
                ended.append(line.strip()[:120])


def test_each_gate_answer_is_one_round_trip(traced, traced_api):
    api = traced_api
    promotion_id = promoted_to_staging(api, traced, 1)
    deploy(api, 1, "staging")
    verify(api, 1, "staging")
    assert api.post("/approvals", json={"repository": "registry.example.com/group/app",
                                        "digest": gate(api, 1, "test").json["image"]
                                        .split("@")[1], "environment": "production"},
                    as_="alice").status_code == 201
    assert api.post("/stops", json={"environments": ["production"], "reason": "freeze"},
                    as_="rm").status_code == 201
    questions = [
        {"environment": "test"},
        {"environment": "staging", "promotion_id": promotion_id, "pipeline_id": 500},
        {"environment": "production"},  # an approval and a stop to read
    ]
    for question in questions:
        assert gate(api, 1, **question).status_code == 200  # the ci token is remembered now
        with round_trips(traced) as trips, sent_statements(traced) as sent:
            answer = gate(api, 1, **question)
        assert answer.status_code == 200, answer.json
        assert len(sent) == 1, sent
        assert len(trips) == 1, (question, trips)
    # what the one round trip read still decides: the stop holds, one approval of two stands
    production = gate(api, 1, "production").json
    reasons = {reason["code"]: reason for reason in production["reasons"]}
    assert not production["allowed"] and "emergency_stop" in reasons, production
