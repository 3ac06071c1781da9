"""Cost flat in history: no list, gate or promotion request query reads a large table from
end to end.

A PostgreSQL database holds 20,000 images, releases, promotions, deployments and audit
entries (ANALYZEd, as autovacuum leaves a live database), the real endpoints run, every
statement they send is captured on its way to the driver, and PostgreSQL's plans for it must
not hold a sequential scan of a large table: the plan for the values sent (EXPLAIN, the
planner's free choice), and the generic plan PostgreSQL keeps once the driver prepared the
statement (psycopg prepares what a connection ran 5 times; PostgreSQL then runs the generic
plan whenever it estimates it no dearer than planning each run, and the gate runs on it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url, text

from promotion_service import db
from promotion_service.api import pagination
from tests.promotion_service.helpers import (
    REPO,
    SOAKED,
    deploy,
    digest,
    ref,
    register,
    sent_statements,
    verify,
)

ROWS = 20_000
# the tables seeded here, which grow with history (projects, environments, tokens and stops
# stay small)
LARGE = {"images", "releases", "release_members", "scans", "promotions", "outbox",
         "deployments", "verifications", "rollouts", "approvals", "audit_log"}


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """This module runs on PostgreSQL only: SQLite's planner is not the one that matters."""
    return postgres_url


def seed_history(app: Any) -> dict[str, int]:
    """ROWS releases of one image each in two projects, each verified in test, promoted to
    and deployed in staging, approved for production, with audit entries; then ANALYZE."""
    with db.engine_of(app).begin() as conn:
        other = conn.execute(text("INSERT INTO projects (path, created_at) VALUES "
                                  "('other/app', now()) RETURNING id")).scalar_one()
        for position, name in enumerate(("test", "staging", "production")):
            conn.execute(text("INSERT INTO environments (project_id, name, position, policy) "
                              "VALUES (:p, :n, :pos, '{}')"), {"p": other, "n": name,
                                                               "pos": position})
        statements = [
            """INSERT INTO images (project_id, repository, digest, commit_sha, ref, tags,
                 registered_by, created_at, revoked_at)
               SELECT CASE WHEN g % 2 = 0 THEN :main ELSE :other END,
                      'registry.example.com/bulk/' || (g % 50), 'sha256:' || md5('i' || g)
                        || md5('j' || g), md5('c' || g) || 'abcdef01', 'main', '[]', 'ci',
                      now() - make_interval(secs => :rows - g),
                      CASE WHEN g % 1000 = 0 THEN now() END
               FROM generate_series(1, :rows) g""",
            """INSERT INTO releases (project_id, digest, member_count, commit_sha, ref, tags,
                 registered_by, created_at, revoked_at)
               SELECT project_id, 'sha256:' || md5('r' || id) || md5('s' || id), 1, commit_sha,
                      ref, tags, registered_by, created_at, revoked_at
               FROM images WHERE repository LIKE 'registry.example.com/bulk/%'""",
            """INSERT INTO release_members (release_id, name, image_id, repository, digest, built)
               SELECT r.id, 'app', i.id, i.repository, i.digest, true
               FROM releases r JOIN images i ON i.commit_sha = r.commit_sha
               WHERE i.repository LIKE 'registry.example.com/bulk/%'""",
            """INSERT INTO scans (image_id, scanner, counts, findings, actor, created_at)
               SELECT image_id, 'trivy', '{"critical": 0, "high": 0}', '[]', 'ci', now()
               FROM release_members""",
            """INSERT INTO verifications (release_id, environment_id, passed, details, actor,
                 created_at)
               SELECT r.id, e.id, true, '{}', 'ci', now() FROM releases r
               JOIN environments e ON e.project_id = r.project_id AND e.name = 'test'""",
            """INSERT INTO promotions (release_id, environment_id, state, kind, requested_by,
                 created_at, updated_at)
               SELECT r.id, e.id, 'verified', 'auto', 'ci', now(), now() FROM releases r
               JOIN environments e ON e.project_id = r.project_id AND e.name = 'staging'""",
            """INSERT INTO outbox (promotion_id, kind, payload, state, attempts, available_at,
                 created_at, sent_at)
               SELECT id, 'trigger_pipeline', '{}', 'sent', 1, now(), now(), now()
               FROM promotions""",
            """INSERT INTO deployments (release_id, environment_id, promotion_id, state,
                 record_id, actor, created_at, updated_at)
               SELECT release_id, environment_id, id, 'succeeded', 'rec-' || id, 'ci', now(),
                      now() FROM promotions""",
            """INSERT INTO rollouts (release_id, environment_id, promotion_id, deployment_id,
                 record_id, created_at, verified_at)
               SELECT release_id, environment_id, promotion_id, id, record_id, now(), now()
               FROM deployments""",
            """INSERT INTO approvals (release_id, environment_id, actor, role, decision,
                 given_in, created_at)
               SELECT r.id, e.id, 'alice', 'approver', 'approve', 'service', now()
               FROM releases r
               JOIN environments e ON e.project_id = r.project_id AND e.name = 'production'""",
            """INSERT INTO audit_log (at, actor, role, action, subject_type, subject_id,
                 prev_hash, hash, project_id)
               SELECT to_char(now(), 'YYYY-MM-DD"T"HH24:MI:SS'), 'ci', 'ci',
                      'promotion.requested', 'promotion', p.id::text, 'p' || md5('p' || p.id),
                      'h' || md5('h' || p.id), r.project_id
               FROM promotions p JOIN releases r ON r.id = p.release_id""",
        ]
        main = conn.execute(text("SELECT id FROM projects WHERE path = 'group/app'")).scalar_one()
        for statement in statements:
            conn.execute(text(statement), {"main": main, "other": other, "rows": ROWS})
        release = conn.execute(text("SELECT max(id) FROM releases WHERE project_id = :p"),
                               {"p": main}).scalar_one()
    with db.engine_of(app).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))  # what autovacuum does on a live database
    return {"project": main, "release": release}


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def seq_scanned(plan: Any) -> set[str]:
    """The large tables an EXPLAIN (FORMAT JSON) answer reads sequentially."""
    plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return {node.get("Relation Name") for node in plan_nodes(plan)
            if node["Node Type"] == "Seq Scan"} & LARGE


def generic_plan(app: Any, statement: str, parameters: Any, explain: str) -> list[str]:
    """EXPLAIN of the statement's generic plan: prepared by psycopg as the service's
    connections prepare it (same parameter types), shown with plan_cache_mode forced."""
    url = make_url(app.config["DATABASE_URL"]).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True,
                         options="-c plan_cache_mode=force_generic_plan") as driver:
        driver.execute(statement, parameters, prepare=True)
        name, count = driver.execute("SELECT name, cardinality(parameter_types) "
                                     "FROM pg_prepared_statements").fetchone()
        # a generic plan does not depend on the values: NULLs will do
        values = f"({', '.join(['NULL'] * count)})" if count else ""
        return [row[0] for row in driver.execute(f"{explain} EXECUTE {name}{values}",
                                                 prepare=False)]


def full_scans(app: Any, statements: list[tuple[str, Any]]) -> list[str]:
    """Each captured SELECT whose plan reads a large table sequentially (the plan for its
    values, or its generic plan), with that plan."""
    found = []
    with db.engine_of(app).connect() as conn:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            scanned = seq_scanned(conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}",
                                                       parameters).scalar_one())
            if scanned:
                shown = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars()
                found.append(f"{sorted(scanned)} in:\n{statement}\n" + "\n".join(shown))
                continue
            scanned = seq_scanned(generic_plan(app, statement, parameters,
                                               "EXPLAIN (FORMAT JSON)")[0])
            if scanned:
                shown = generic_plan(app, statement, parameters, "EXPLAIN")
                found.append(f"{sorted(scanned)} in the generic plan of:\n{statement}\n"
                             + "\n".join(shown))
    return found


def promote(app: Any, api: Any) -> None:
    """Image 1 deployed and verified in test, its soak time passed, promoted to staging by
    hand (the request's lookups, in-flight check, gate, insert and audit entry)."""
    deploy(api, 1, "test")
    release = verify(api, 1, "test")["release_id"]
    with db.engine_of(app).begin() as conn:
        conn.execute(text("UPDATE verifications SET created_at = created_at - :by "
                          "WHERE release_id = :r"), {"by": SOAKED, "r": release})
    resp = api.post("/promotions", json=ref(1, "staging"), as_="rm")
    assert resp.status_code == 201, resp.json


TOTALS = "SELECT count(*) AS count_1"  # Listing.count: the X-Pagination header's total
UNPAGED = {"/gate", "/approvals", "/stops"}


def call_all(api: Any, calls: list[tuple[str, str, dict[str, Any]]]) -> None:
    for who, path, query in calls:
        query = {k: v for k, v in query.items() if v is not None}
        resp = api.get(path, query_string=query, as_=who)
        assert resp.status_code == 200, (path, query, resp.json)


def test_no_list_or_gate_query_reads_a_large_table_end_to_end(app, api, monkeypatch):
    """The gate, a promotion request and every page of every list, by offset (with its
    bounded total) and by keyset (a keyset page deep in the history, too, sending no count and
    no OFFSET; a project-scoped token's audit list too).

    The offset total's bound is scaled to the seeded history as 10,000 is to the million
    rows of issue 16: counting half of a 20,000-row table, a sequential scan is the cheaper
    plan, and rightly chosen."""
    monkeypatch.setattr(pagination, "COUNT_LIMIT", ROWS // 100)
    register(api, 1)
    seeded = seed_history(app)
    release, bulk_repo = seeded["release"], "registry.example.com/bulk/2"
    with db.engine_of(app).connect() as conn:
        one = conn.execute(text("SELECT repository, digest, commit_sha FROM images "
                                "WHERE repository = :r LIMIT 1"), {"r": bulk_repo}).one()
    project = seeded["project"]
    calls = [
        ("ci-bot", "/gate", {"repository": REPO, "digest": digest(1), "environment": "test"}),
        ("ci-bot", "/gate", {"release_id": release, "environment": "staging"}),
        ("ci-bot", "/gate", {"release_id": release, "environment": "production"}),
        ("ci-bot", "/gate", {"repository": one.repository, "digest": one.digest,
                             "environment": "production"}),
        ("rm", "/images", {}),
        ("rm", "/images", {"page": 3, "page_size": 50}),
        ("rm", "/images", {"project": "group/app"}),
        ("rm", "/images", {"repository": one.repository}),
        ("rm", "/images", {"repository": one.repository, "digest": one.digest}),
        ("rm", "/images", {"commit_sha": one.commit_sha}),
        ("rm", "/images", {"revoked": "true"}),
        ("ci-bot", "/images", {}),
        ("rm", "/releases", {}),
        ("rm", "/releases", {"project": "group/app"}),
        ("rm", "/releases", {"commit_sha": one.commit_sha}),
        ("rm", "/releases", {"revoked": "true"}),
        ("ci-bot", "/releases", {}),
        ("rm", "/promotions", {}),
        ("rm", "/promotions", {"project": "group/app", "environment": "staging"}),
        ("rm", "/promotions", {"state": "requested"}),
        ("rm", "/promotions", {"release_id": release}),
        ("rm", "/promotions", {"repository": one.repository, "digest": one.digest}),
        ("ci-bot", "/promotions", {}),
        ("rm", "/audit", {}),
        ("rm", "/audit", {"subject_type": "promotion", "subject_id": "7"}),
        ("rm", "/audit", {"action": "image.registered"}),
        ("rm", "/audit", {"actor": "alice"}),
        ("ci-bot", "/audit", {}),
        ("rm", "/projects", {}),
        ("rm", f"/projects/{project}/environments/staging/releases", {}),
        ("rm", "/approvals", {"release_id": release, "environment": "production"}),
        ("rm", "/stops", {}),
    ]
    lists = [(who, path, {k: v for k, v in query.items() if k != "page"})
             for who, path, query in calls if path not in UNPAGED]
    deep = {"pagination": "keyset", "page_size": 50, "cursor": ROWS // 2}
    keyset = [(who, path, query | deep | extra) for who, path, query in lists
              for extra in ({"cursor": None}, {})]  # the first page, and one deep in
    with sent_statements(app) as keyset_statements:
        call_all(api, keyset)
    assert not [s for s, _ in keyset_statements if s.startswith(TOTALS) or "OFFSET" in s]
    with sent_statements(app) as statements:
        call_all(api, calls)
    assert len(statements) > len(calls)
    assert [s for s, _ in statements if s.startswith(TOTALS)]
    with sent_statements(app) as requested:  # image 1 verified in test and soaked: to staging
        promote(app, api)
    assert any(s.startswith("INSERT INTO promotions") for s, _ in requested)
    statements += requested + keyset_statements
    problems = full_scans(app, statements)
    assert not problems, "\n\n".join(problems)


def test_the_audit_page_reads_no_large_table_end_to_end(app, api, tokens, monkeypatch):
    """The audit page (/ui/audit) with a full verdict stored: the verdict, the entry it ended
    on and those since, a page of entries (and whether there is an older one) and the count
    bounded as the API's, with and without its filters, and a page deep in; no statement
    reads the log from end to end (the page used to walk the whole chain and count it all)."""
    from tests.promotion_service.web.pages import Browser

    monkeypatch.setattr(pagination, "COUNT_LIMIT", ROWS // 100)
    register(api, 1)
    seed_history(app)
    with db.engine_of(app).begin() as conn:  # as a full verify stores it, 50 entries ago
        through, head = conn.execute(text(
            "SELECT id, hash FROM audit_log ORDER BY id DESC OFFSET 50 LIMIT 1")).one()
        conn.execute(text("INSERT INTO audit_verdicts (checked_at, entries, through_id, "
                          "head_hash, checkpoints) VALUES (now(), :n, :id, :h, 0)"),
                     {"n": through, "id": through, "h": head})
    rm = Browser(app.test_client())
    assert rm.sign_in(tokens["rm"]).status_code == 302
    with sent_statements(app) as statements:
        for query in ("", "?project=group/app", "?action=image.registered", "?actor=alice",
                      "?page=3"):
            page = rm.get(f"/ui/audit{query}")
            assert page.status_code == 200 and "chain" in page.text
    assert any("audit_verdicts" in s for s, _ in statements)
    problems = full_scans(app, statements)
    assert not problems, "\n\n".join(problems)
    # and none reads more of the log than its bounded count and a page 3 deep (the page used
    # to count the whole log, by an index: every one of its ROWS entries)
    read = rows_read(app, statements, "audit_log")
    assert read and max(read) <= ROWS // 100 + 1 + 3 * 100 + 1, sorted(read)[-3:]


def rows_read(app: Any, statements: list[tuple[str, Any]], table: str) -> list[int]:
    """Of each captured SELECT that reads `table`, the rows its scans of it returned (by
    EXPLAIN ANALYZE: it runs the statement)."""
    read = []
    with db.engine_of(app).connect() as conn:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")) or \
                    table not in statement:
                continue
            plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}",
                                        parameters).scalar_one()
            plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
            read.append(sum(node["Actual Rows"] * node["Actual Loops"]
                            for node in plan_nodes(plan)
                            if node.get("Relation Name") == table))
    return read
