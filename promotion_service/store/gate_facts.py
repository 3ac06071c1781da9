"""The gate's facts in one SQL round trip, a row per member (plus one for approvals when
there are any).

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

from sqlalchemy import Boolean, Connection, DateTime, Integer, String, bindparam, column, text
from sqlalchemy.orm import Session

from ..domain.holds import Hold
from ..domain.identity import authors
from ..domain.policy import Approval, EnvironmentPolicy, GateFacts, MemberFacts, Stop

# one row per member (ordered by name); the release's and environment's columns repeat. One
# text for both uses: a release and an environment name (the gate), or many (release id,
# environment id) pairs at once (the overview's candidates).
_FACTS = """{asked}
SELECT r.id, r.project_id, r.digest AS release_digest, r.registered_by, r.triggered_by,
       r.commit_author, p.path,
       e.id AS env_id, e.name AS env_name, e.position, CAST(e.policy AS TEXT) AS policy,
       e.hold_reason, e.hold_by, e.hold_at,
       pe.name AS prev_name, v.passed AS prev_passed, v.created_at AS prev_verified_at,
       (SELECT COUNT(*) FROM approvals a WHERE a.release_id = r.id AND a.environment_id = e.id
          AND a.withdrawn_at IS NULL) AS standing_approvals,
       (SELECT COUNT(*) FROM stops st WHERE st.environment = e.name
          AND st.lifted_at IS NULL) AS active_stops,
       m.name AS member, m.repository, m.digest, m.built, i.revoked_at, i.revoked_reason,
       i.registered_by AS image_registered_by, i.triggered_by AS image_triggered_by,
       i.commit_author AS image_commit_author,
       CAST(s.counts AS TEXT) AS scan_counts, CAST(s.findings AS TEXT) AS scan_findings
FROM {releases}
JOIN projects p ON p.id = r.project_id
JOIN release_members m ON m.release_id = r.id
JOIN images i ON i.id = m.image_id
{environment}
LEFT JOIN environments pe ON pe.project_id = r.project_id AND pe.position = e.position - 1
LEFT JOIN verifications v ON v.id = (SELECT MAX(v2.id) FROM verifications v2
                                     WHERE v2.release_id = r.id AND v2.environment_id = pe.id)
LEFT JOIN scans s ON s.id = (SELECT MAX(s2.id) FROM scans s2 WHERE s2.image_id = i.id)
{where}
ORDER BY r.id, e.id, m.name
"""
_ONE = {"asked": "", "releases": "releases r",
        "environment": "LEFT JOIN environments e ON e.project_id = r.project_id "
                       "AND e.name = :environment"}
_MANY = _FACTS.format(asked="WITH asked (release_id, env_id) AS (VALUES {pairs})",
                      releases="asked JOIN releases r ON r.id = asked.release_id",
                      environment="JOIN environments e ON e.id = asked.env_id", where="")
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
    column("prev_verified_at", DateTime), column("standing_approvals", Integer),
    column("active_stops", Integer), column("member", String), column("repository", String),
    column("digest", String), column("built", Boolean), column("revoked_at", DateTime),
    column("revoked_reason", String), column("image_registered_by", String),
    column("image_triggered_by", String), column("image_commit_author", String),
    column("scan_counts", String),
    column("scan_findings", String),
)
BY_REF = text(_FACTS.format(**_ONE, where=f"WHERE r.id = {_ONE_MEMBER_OF_IMAGE}")
              ).columns(*_COLUMNS)
BY_ID = text(_FACTS.format(**_ONE, where="WHERE r.id = :release_id")).columns(*_COLUMNS)
# standing approvals and active stops of many pairs at once (filtered to the pairs in Python)
APPROVALS = text(
    "SELECT release_id, environment_id, actor, role, decision, created_at, expires_at, comment "
    "FROM approvals WHERE release_id IN :release_ids AND environment_id IN :env_ids "
    "AND withdrawn_at IS NULL ORDER BY id").bindparams(
        bindparam("release_ids", expanding=True), bindparam("env_ids", expanding=True)
    ).columns(column("release_id", Integer), column("environment_id", Integer),
              column("actor", String), column("role", String), column("decision", String),
              column("created_at", DateTime), column("expires_at", DateTime),
              column("comment", String))
STOPS = text(
    "SELECT environment, reason, actor, created_at FROM stops WHERE environment IN :names "
    "AND lifted_at IS NULL ORDER BY id").bindparams(bindparam("names", expanding=True)).columns(
        column("environment", String), column("reason", String), column("actor", String),
        column("created_at", DateTime))


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
    def key(self) -> tuple[int, int | None]:
        """(release id, environment id): what `load_many` answers by."""
        return self.release_id, self.environment_id

    def facts(self, session: Session | Connection, now: datetime,
              rollback: bool = False) -> GateFacts:
        """The GateFacts for domain.policy.evaluate (one more query only if needed)."""
        return facts_of(session, [self], now, rollback)[self.key]

    def _facts(self, now: datetime, approvals: tuple[Approval, ...], stops: tuple[Stop, ...],
               rollback: bool) -> GateFacts:
        r = self.row
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
                *(authors(m.image_registered_by, m.image_triggered_by, m.image_commit_author)
                  for m in self.members if m.built)),
            stops=stops, rollback=rollback,
        )


def facts_of(session: Session | Connection, rows: Sequence[GateRow], now: datetime,
             rollback: bool = False) -> dict[tuple[int, int | None], GateFacts]:
    """Each row's GateFacts, by key; the standing approvals and the active stops of all the
    rows in one query each, and only when a row has some."""
    conn = session.connection() if isinstance(session, Session) else session
    approved = [row for row in rows if row.row.standing_approvals]
    approvals: dict[tuple[int, int | None], list[Approval]] = {}
    if approved:
        keys = {row.key for row in approved}
        for a in conn.execute(APPROVALS, {"release_ids": sorted({k[0] for k in keys}),
                                          "env_ids": sorted({k[1] for k in keys})}):
            if (a.release_id, a.environment_id) in keys:
                approvals.setdefault((a.release_id, a.environment_id), []).append(
                    Approval(a.actor, a.role, a.decision, a.created_at, a.expires_at,
                             a.comment or ""))
    stopped = sorted({row.environment for row in rows if row.row.active_stops})
    stops: dict[str, list[Stop]] = {}
    if stopped:
        for s in conn.execute(STOPS, {"names": stopped}):
            stops.setdefault(s.environment, []).append(Stop(s.reason, s.actor, s.created_at))
    return {row.key: row._facts(now, tuple(approvals.get(row.key, ())),
                                tuple(stops.get(row.environment, ())), rollback)
            for row in rows}


def load(session: Session | Connection, environment: str, *, repository: str | None = None,
         digest: str | None = None, release_id: int | None = None) -> GateRow | None:
    """One round trip: the release (by id, or an image's one-member release), its
    environment, its members and the facts' summary."""
    # Core, not the ORM: this is the gate's hot path
    conn = session.connection() if isinstance(session, Session) else session
    if release_id is not None:
        rows = conn.execute(BY_ID, {"release_id": release_id,
                                    "environment": environment}).all()
    else:
        rows = conn.execute(BY_REF, {"repository": repository, "digest": digest,
                                     "environment": environment}).all()
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
    pairs = sorted(set(asked))
    values = ", ".join(f"(:r{n}, :e{n})" for n in range(len(pairs)))
    stmt = text(_MANY.format(pairs=values)).columns(*_COLUMNS)
    params = {}
    for n, (release_id, env_id) in enumerate(pairs):
        params[f"r{n}"], params[f"e{n}"] = release_id, env_id
    found: dict[tuple[int, int], list[Any]] = {}
    for row in conn.execute(stmt, params):
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
