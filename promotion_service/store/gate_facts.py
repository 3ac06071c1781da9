"""The gate's facts in one SQL round trip: a row per member, each carrying the release's,
the environment's, its standing approvals' and stops' (as JSON) and a named promotion's.

The gate is on every deploy job's path and every merge-request check, so it reads with
hand-written SQL instead of ORM queries; the answer still comes from domain.policy.evaluate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Boolean, Connection, DateTime, Integer, String, TextClause, column, text
from sqlalchemy.orm import Session

from ..domain.holds import Hold
from ..domain.identity import authors, member_authors
from ..domain.policy import (
    Approval,
    EnvironmentPolicy,
    GateFacts,
    MemberFacts,
    RolledBack,
    Stop,
)

# one row per member (ordered by name); the release's and environment's columns repeat. One
# text for both uses: a release and an environment name (the gate), or many (release id,
# environment id) pairs at once (the overview's candidates).
# rb: the release's latest rollout in an earlier environment when it was rolled back there
_FACTS = """{asked}
SELECT r.id, r.project_id, r.digest AS release_digest, r.registered_by, r.triggered_by,
       r.commit_author, p.path,
       e.id AS env_id, e.name AS env_name, e.position, CAST(e.policy AS TEXT) AS policy,
       e.hold_reason, e.hold_by, e.hold_at,
       pe.name AS prev_name, v.passed AS prev_passed, v.created_at AS prev_verified_at,
       {approvals} AS approvals, {stops} AS stops,
       pr.id AS promotion_id, pr.release_id AS promotion_release_id,
       pr.environment_id AS promotion_environment_id, pr.state AS promotion_state,
       pr.kind AS promotion_kind, pr.pipeline_id AS promotion_pipeline_id,
       m.name AS member, m.repository, m.digest, m.built, i.revoked_at, i.revoked_reason,
       i.registered_by AS image_registered_by, i.triggered_by AS image_triggered_by,
       i.commit_author AS image_commit_author,
       CAST(s.counts AS TEXT) AS scan_counts, CAST(s.findings AS TEXT) AS scan_findings,
       rbe.name AS rolled_back_in, rb.rolled_back_at, rb.rolled_back_by, rb.rolled_back_reason
FROM {releases}
JOIN projects p ON p.id = r.project_id
JOIN release_members m ON m.release_id = r.id
JOIN images i ON i.id = m.image_id
{environment}
LEFT JOIN environments pe ON pe.project_id = r.project_id AND pe.position = e.position - 1
LEFT JOIN verifications v ON v.id = (SELECT MAX(v2.id) FROM verifications v2
                                     WHERE v2.release_id = r.id AND v2.environment_id = pe.id)
LEFT JOIN scans s ON s.id = (SELECT MAX(s2.id) FROM scans s2 WHERE s2.image_id = i.id)
LEFT JOIN promotions pr ON pr.id = :promotion_id
LEFT JOIN rollouts rb ON rb.id = (SELECT MAX(x.id) FROM rollouts x
                                  JOIN environments xe ON xe.id = x.environment_id
                                  WHERE x.release_id = r.id AND xe.position < e.position
                                    AND xe.project_id = r.project_id
                                    AND x.rolled_back_at IS NOT NULL
                                    AND NOT EXISTS (SELECT 1 FROM rollouts y
                                      WHERE y.release_id = x.release_id
                                        AND y.environment_id = x.environment_id
                                        AND y.id > x.id))
LEFT JOIN environments rbe ON rbe.id = rb.environment_id
{where}
ORDER BY r.id, e.id, m.name
"""
_ONE = {"asked": "", "releases": "releases r",
        "environment": "LEFT JOIN environments e ON e.project_id = r.project_id "
                       "AND e.name = :environment"}
_APPROVALS = ("a.actor, a.role, a.decision, a.created_at, a.expires_at, a.comment",
              "approvals a WHERE a.release_id = r.id AND a.environment_id = e.id "
              "AND a.withdrawn_at IS NULL")
_STOPS = ("st.reason, st.actor, st.created_at",
          "stops st WHERE st.environment = e.name AND st.lifted_at IS NULL")
# rows as a JSON array of arrays, oldest first, in each database's words
_AS_JSON = {
    "postgresql": "(SELECT CAST(json_agg(json_build_array({0}) ORDER BY {2}.id) AS TEXT) "
                  "FROM {1})",
    "sqlite": "(SELECT json_group_array(json_array({0})) FROM "
              "(SELECT * FROM {1} ORDER BY {2}.id) {2})",
}
# an image reference names the image's newest one-member release
_ONE_MEMBER_OF_IMAGE = """(SELECT MAX(r1.id) FROM releases r1
  JOIN release_members m1 ON m1.release_id = r1.id
  JOIN images i1 ON i1.id = m1.image_id
  WHERE i1.repository = :repository AND i1.digest = :digest AND r1.member_count = 1)"""
_COLUMNS = (
    column("id", Integer), column("project_id", Integer), column("release_digest", String),
    column("registered_by", String), column("triggered_by", String),
    column("commit_author", String), column("path", String),
    column("env_id", Integer), column("env_name", String), column("position", Integer),
    column("policy", String), column("hold_reason", String), column("hold_by", String),
    column("hold_at", DateTime), column("prev_name", String), column("prev_passed", Integer),
    column("prev_verified_at", DateTime), column("approvals", String), column("stops", String),
    column("promotion_id", Integer), column("promotion_release_id", Integer),
    column("promotion_environment_id", Integer), column("promotion_state", String),
    column("promotion_kind", String), column("promotion_pipeline_id", Integer),
    column("member", String), column("repository", String),
    column("digest", String), column("built", Boolean), column("revoked_at", DateTime),
    column("revoked_reason", String), column("image_registered_by", String),
    column("image_triggered_by", String), column("image_commit_author", String),
    column("scan_counts", String), column("scan_findings", String),
    column("rolled_back_in", String), column("rolled_back_at", DateTime),
    column("rolled_back_by", String), column("rolled_back_reason", String),
)


def _sql(dialect: str, **parts: str) -> TextClause:
    as_json = _AS_JSON[dialect]
    return text(_FACTS.format(approvals=as_json.format(*_APPROVALS, "a"),
                              stops=as_json.format(*_STOPS, "st"), **parts)).columns(*_COLUMNS)


@lru_cache(maxsize=8)
def _statement(dialect: str, by_id: bool) -> TextClause:
    """The gate's query for this database, naming the release by id or by image."""
    return _sql(dialect, **_ONE,
                where="WHERE r.id = " + (":release_id" if by_id else _ONE_MEMBER_OF_IMAGE))


# the asked pairs as one JSON parameter ([[release id, environment id], ...]): one short
# statement text however many pairs (the drivers cache its parsing; 400 bind parameters
# made a new 20 KB text per page size), and one a connection may keep prepared
_ASKED = {
    "postgresql": "SELECT CAST(p.value->>0 AS INTEGER), CAST(p.value->>1 AS INTEGER) "
                  "FROM json_array_elements(CAST(:asked AS JSON)) AS p",
    "sqlite": "SELECT json_extract(p.value, '$[0]'), json_extract(p.value, '$[1]') "
              "FROM json_each(:asked) AS p",
}


@lru_cache(maxsize=8)
def _many_statement(dialect: str) -> TextClause:
    """The same query for many (release id, environment id) pairs."""
    return _sql(dialect, asked=f"WITH asked (release_id, env_id) AS ({_ASKED[dialect]})",
                releases="asked JOIN releases r ON r.id = asked.release_id",
                environment="JOIN environments e ON e.id = asked.env_id", where="")


@dataclass(frozen=True)
class NamedPromotion:
    """The promotion the question named, as the gate reads it."""

    id: int
    release_id: int
    environment_id: int
    state: str
    kind: str
    pipeline_id: int | None


def _rows(stored: str | None) -> list[list[Any]]:
    """A JSON array of rows (SQLite says [] for none, PostgreSQL NULL)."""
    return json.loads(stored) if stored else []


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


@dataclass(frozen=True)
class GateRow:
    """The release and environment the gate was asked about, with the policy's facts."""

    release_id: int
    project_id: int
    project_path: str
    image_ref: str | None  # the one member's repository@digest (a release of one image)
    environment_id: int | None
    environment: str
    position: int | None
    policy: EnvironmentPolicy | None
    row: Any
    members: tuple[Any, ...]

    @property
    def hold(self) -> Hold | None:
        """The hold on automatic promotion into the environment, if there is one."""
        r = self.row
        return Hold(r.hold_reason or "", r.hold_by or "", r.hold_at) if r.hold_at else None

    @property
    def promotion(self) -> NamedPromotion | None:
        """The promotion named in the question, if it exists."""
        r = self.row
        if r.promotion_id is None:
            return None
        return NamedPromotion(r.promotion_id, r.promotion_release_id,
                              r.promotion_environment_id, r.promotion_state, r.promotion_kind,
                              r.promotion_pipeline_id)

    def facts(self, now: datetime, rollback: bool = False) -> GateFacts:
        """The GateFacts for domain.policy.evaluate (read with the row: no more queries)."""
        r = self.row
        approvals = tuple(Approval(actor, role, decision, _time(at), _time(expires),
                                   comment or "")
                          for actor, role, decision, at, expires, comment in _rows(r.approvals))
        stops = tuple(Stop(reason, actor, _time(at)) for reason, actor, at in _rows(r.stops))
        return GateFacts(
            environment=self.environment, now=now, previous_environment=r.prev_name,
            verified_in_previous_at=r.prev_verified_at if r.prev_passed else None,
            members=tuple(MemberFacts(
                m.member, m.digest, bool(m.built), m.revoked_at is not None,
                m.revoked_reason or "",
                json.loads(m.scan_counts) if m.scan_counts is not None else None,
                tuple(json.loads(m.scan_findings or "[]"))) for m in self.members),
            approvals=approvals,
            image_authors=authors(r.registered_by, r.triggered_by, r.commit_author).union(
                *(member_authors(bool(m.built), m.image_registered_by, m.image_triggered_by,
                                 m.image_commit_author) for m in self.members)),
            stops=stops, rollback=rollback,
            rolled_back=RolledBack(r.rolled_back_in, r.rolled_back_at, r.rolled_back_by or "",
                                   r.rolled_back_reason or "") if r.rolled_back_at else None,
        )


def load(session: Session | Connection, environment: str, *, repository: str | None = None,
         digest: str | None = None, release_id: int | None = None,
         promotion_id: int | None = None) -> GateRow | None:
    """One round trip: the release (by id, or an image's one-member release), its
    environment, its members, the facts and the named promotion."""
    # Core, not the ORM: this is the gate's hot path
    conn = session.connection() if isinstance(session, Session) else session
    statement = _statement(conn.dialect.name, release_id is not None)
    rows = conn.execute(statement, {"release_id": release_id, "repository": repository,
                                    "digest": digest, "environment": environment,
                                    "promotion_id": promotion_id}).all()
    if not rows:
        return None
    return _row(rows, environment)


def load_many(session: Session | Connection,
              asked: Sequence[tuple[int, int]]) -> dict[tuple[int, int], GateRow]:
    """Many (release id, environment id) pairs in one round trip, each pair's GateRow by the
    pair (a pair naming no release or environment is left out)."""
    if not asked:
        return {}
    conn = session.connection() if isinstance(session, Session) else session
    params = {"promotion_id": None, "asked": json.dumps(sorted(set(asked)))}
    found: dict[tuple[int, int], list[Any]] = {}
    for row in conn.execute(_many_statement(conn.dialect.name), params):
        found.setdefault((row.id, row.env_id), []).append(row)
    return {key: _row(rows, rows[0].env_name) for key, rows in found.items()}


def _row(rows: Sequence[Any], environment: str) -> GateRow:
    """The GateRow of one release and environment from its rows (one per member)."""
    row = rows[0]
    return GateRow(
        release_id=row.id, project_id=row.project_id, project_path=row.path,
        image_ref=f"{row.repository}@{row.digest}" if len(rows) == 1 else None,
        environment_id=row.env_id, environment=environment, position=row.position,
        policy=parse_policy(row.policy) if row.policy is not None else None, row=row,
        members=tuple(rows))


@lru_cache(maxsize=1024)
def parse_policy(stored: str) -> EnvironmentPolicy:
    """Policies change rarely: parse each stored form once per process."""
    return EnvironmentPolicy.from_dict(json.loads(stored), "stored policy")
