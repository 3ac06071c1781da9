"""The gate: may this release go into this environment now? The store reads the facts,
domain.policy.evaluate answers. Asking never changes anything: a deploy pipeline claims its
promotion with a write (services/claims.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from ..db.models import Environment, Promotion, Release, utcnow
from ..domain.actor import Actor
from ..domain.holds import Hold, held, lift_instructions
from ..domain.policy import Decision, Reason, evaluate
from ..domain.states import IN_FLIGHT
from ..errors import Invalid, NotFound
from ..store import gate_facts
from ..store.gate_facts import GateRow, NamedPromotion
from . import lookups


@dataclass(frozen=True)
class Answer:
    """The gate's answer: the decision, and the hold on the environment with what lifts it."""

    row: GateRow
    decision: Decision
    hold: dict[str, str] | None = None


def ask(conn: Session | Connection, actor: Actor, *, environment: str,
        repository: str | None = None, digest: str | None = None,
        release_id: int | None = None, project: str | None = None,
        promotion_id: int | None = None, pipeline_id: int | None = None) -> Answer:
    """The deploy job's (or anyone's) question, read-only: any connection will do.

    The release by id, or an image by repository and digest (its one-member release).
    Without a promotion: may the release go in now? A held environment says no (nothing is
    promoted into it automatically) and names the hold. With a promotion (and the pipeline
    that would deploy it): may that promotion be deployed?
    """
    row = _asked_row(conn, actor, environment, project, repository=repository, digest=digest,
                     release_id=release_id, promotion_id=promotion_id)
    hold = row.hold
    if promotion_id is None:
        decision = for_release(row)
        if decision.allowed and hold is not None:
            decision = Decision(False, (held(hold, row.environment, _lift(row)),))
        return Answer(row, decision, _hold(row, hold))
    found = row.promotion
    problem = promotion_problem(found, promotion_id, row)
    if problem is None and pipeline_id is not None and found.pipeline_id not in (
            None, pipeline_id):
        problem = claimed_by_other(found.id, found.pipeline_id, pipeline_id)
    if problem is not None:
        return Answer(row, Decision(False, (problem,)), _hold(row, hold))
    return Answer(row, for_release(row, found.kind == "rollback"), _hold(row, hold))


def _asked_row(conn: Session | Connection, actor: Actor, environment: str,
               project: str | None = None, **names: Any) -> GateRow:
    """The row an actor asks about, within its project scope."""
    row = lookup(conn, environment, **names)
    lookups.check_scope(actor, row.project_path)
    if project is not None and row.project_path != project:
        raise Invalid.field("project", f"the release belongs to project {row.project_path}",
                            "query")
    return row


def lookup(conn: Session | Connection, environment: str, *, repository: str | None = None,
           digest: str | None = None, release_id: int | None = None,
           promotion_id: int | None = None) -> GateRow:
    """The gate's row for a release (or an image's one-member release) and environment
    name (with the named promotion, if any), or a 4xx that helps."""
    if release_id is None and not (repository and digest):
        raise Invalid.field("release_id", "name the release (release_id), or the image "
                            "(repository and digest)", "query")
    row = gate_facts.load(conn, environment, repository=repository, digest=digest,
                          release_id=release_id, promotion_id=promotion_id)
    if row is None:
        if release_id is not None:
            raise NotFound(f"no release with id {release_id} (register it with POST "
                           "/api/v1/releases)")
        # why not: the image is unknown (404), or only in releases of several images (422)
        session = conn if isinstance(conn, Session) else Session(bind=conn)
        lookups.release_of_image(session, lookups.image(session, repository or "",
                                                         digest or ""), "query")
        raise lookups.not_registered(repository or "", digest or "")
    if row.environment_id is None:
        raise lookups.missing_environment(conn, row.project_id, environment)
    return row


def for_release(row: GateRow, rollback: bool = False) -> Decision:
    """The policy's answer for the looked-up release now (no promotion involved)."""
    return evaluate(row.policy, row.facts(utcnow(), rollback))


def decide(session: Session, release: Release, env: Environment,
           now: datetime | None = None) -> Decision:
    """The policy's answer for this release entering this environment now."""
    row = gate_facts.load(session, env.name, release_id=release.id)
    return evaluate(row.policy, row.facts(now or utcnow()))


def promotion_problem(promotion: Promotion | NamedPromotion | None, promotion_id: int,
                      row: GateRow) -> Reason | None:
    """Why a named promotion cannot be deployed by this question, if it cannot."""
    if promotion is None:
        return Reason("promotion_unknown", f"there is no promotion {promotion_id}",
                      "pass the CD_PROMOTION_ID the service gave this pipeline")
    if promotion.release_id != row.release_id or promotion.environment_id != row.environment_id:
        return Reason("promotion_mismatch",
                      f"promotion {promotion_id} is for another release or environment",
                      "deploy the release and environment named by the promotion")
    if promotion.state not in IN_FLIGHT:
        return Reason("promotion_closed", f"promotion {promotion_id} is {promotion.state}",
                      "request a new promotion")
    return None


def claimed_by_other(promotion_id: int, owner: int | None, pipeline_id: int) -> Reason:
    """The promotion belongs to another pipeline: this one must not deploy it."""
    return Reason(
        "promotion_claimed",
        f"promotion {promotion_id} is being deployed by pipeline {owner}, not {pipeline_id}",
        "nothing to do here: the other pipeline deploys it (request a new promotion if it fails)",
        {"pipeline_id": owner})


def _lift(row: GateRow) -> str:
    return lift_instructions(row.project_id, row.environment)


def _hold(row: GateRow, hold: Hold | None) -> dict[str, str] | None:
    return hold.to_dict(_lift(row)) if hold is not None else None
