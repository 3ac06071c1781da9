"""The gate: may this image go into this environment now? The store reads the facts,
domain.policy.evaluate answers. Asking never changes anything: a deploy pipeline claims its
promotion with a write (services/claims.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from ..db.models import Environment, Image, Promotion, utcnow
from ..domain.actor import Actor
from ..domain.holds import Hold, held, lift_instructions
from ..domain.policy import Decision, Reason, evaluate
from ..domain.states import IN_FLIGHT
from ..errors import Invalid
from ..store import gate_facts, promotions
from ..store.gate_facts import GateRow
from . import lookups


@dataclass(frozen=True)
class Answer:
    """The gate's answer: the decision, and the hold on the environment with what lifts it."""

    row: GateRow
    decision: Decision
    hold: dict[str, str] | None = None


def ask(conn: Session | Connection, actor: Actor, *, repository: str, digest: str,
        environment: str, project: str | None = None, promotion_id: int | None = None,
        pipeline_id: int | None = None) -> Answer:
    """The deploy job's (or anyone's) question, read-only: any connection will do.

    Without a promotion: may the image go in now? A held environment says no (nothing is
    promoted into it automatically) and names the hold. With a promotion (and the pipeline
    that would deploy it): may that promotion be deployed?
    """
    row = _asked_row(conn, actor, repository, digest, environment, project)
    hold = row.hold
    if promotion_id is None:
        decision = for_image(conn, row)
        if decision.allowed and hold is not None:
            decision = Decision(False, (held(hold, row.environment, _lift(row)),))
        return Answer(row, decision, _hold(row, hold))
    found = promotions.get_row(conn, promotion_id)
    problem = promotion_problem(found, promotion_id, row)
    if problem is None and pipeline_id is not None and found.pipeline_id not in (
            None, pipeline_id):
        problem = claimed_by_other(found.id, found.pipeline_id, pipeline_id)
    if problem is not None:
        return Answer(row, Decision(False, (problem,)), _hold(row, hold))
    return Answer(row, for_image(conn, row, found.kind == "rollback"), _hold(row, hold))


def _asked_row(conn: Session | Connection, actor: Actor, repository: str, digest: str,
              environment: str, project: str | None = None) -> GateRow:
    """The row an actor asks about, within its project scope."""
    row = lookup(conn, repository, digest, environment)
    lookups.check_scope(actor, row.project_path)
    if project is not None and row.project_path != project:
        raise Invalid.field("project", f"the image belongs to project {row.project_path}",
                            "query")
    return row


def lookup(conn: Session | Connection, repository: str, digest: str,
           environment: str) -> GateRow:
    """The gate's row for an image reference and environment name, or a 404 that helps."""
    row = gate_facts.load(conn, environment, repository=repository, digest=digest)
    if row is None:
        raise lookups.not_registered(repository, digest)
    if row.environment_id is None:
        raise lookups.missing_environment(conn, row.project_id, environment)
    return row


def for_image(conn: Session | Connection, row: GateRow, rollback: bool = False) -> Decision:
    """The policy's answer for the looked-up image now (no promotion involved)."""
    return evaluate(row.policy, row.facts(conn, utcnow(), rollback))


def decide(session: Session, image: Image, env: Environment,
           now: datetime | None = None) -> Decision:
    """The policy's answer for this image entering this environment now."""
    row = gate_facts.load(session, env.name, image_id=image.id)
    return evaluate(row.policy, row.facts(session, now or utcnow()))


def promotion_problem(promotion: Promotion | None, promotion_id: int,
                      row: GateRow) -> Reason | None:
    """Why a named promotion cannot be deployed by this question, if it cannot."""
    if promotion is None:
        return Reason("promotion_unknown", f"there is no promotion {promotion_id}",
                      "pass the CD_PROMOTION_ID the service gave this pipeline")
    if promotion.image_id != row.image_id or promotion.environment_id != row.environment_id:
        return Reason("promotion_mismatch",
                      f"promotion {promotion_id} is for another image or environment",
                      "deploy the image and environment named by the promotion")
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
