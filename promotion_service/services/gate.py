"""The gate: may this image go into this environment now? The store reads the facts,
domain.policy.evaluate answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.models import Environment, Image, Promotion, utcnow
from ..domain.actor import Actor
from ..domain.policy import Decision, Reason, evaluate
from ..domain.states import IN_FLIGHT
from ..errors import Invalid
from ..store import gate_facts, promotions
from ..store.gate_facts import GateRow
from . import lookups


def ask(conn: Session | Connection, actor: Actor, *, repository: str, digest: str,
        environment: str, project: str | None = None) -> tuple[GateRow, Decision]:
    """The deploy job's (or anyone's) question, read-only: any connection will do."""
    row = _asked_row(conn, actor, repository, digest, environment, project)
    return row, for_image(conn, row)


def ask_for_promotion(session: Session, actor: Actor, *, repository: str, digest: str,
                      environment: str, promotion_id: int, pipeline_id: int | None = None,
                      project: str | None = None) -> tuple[GateRow, Decision]:
    """The deploy job of a promotion asks; with its pipeline, the first to ask claims it."""
    row = _asked_row(session, actor, repository, digest, environment, project)
    if pipeline_id is None:
        return row, for_deploy(session, row, promotion_id)
    with write_transaction(session):
        return row, for_deploy(session, row, promotion_id, pipeline_id)


def _asked_row(conn: Session | Connection, actor: Actor, repository: str, digest: str,
               environment: str, project: str | None) -> GateRow:
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


def for_deploy(session: Session, row: GateRow, promotion_id: int | None = None,
               pipeline_id: int | None = None) -> Decision:
    """The deploy job's gate; with a promotion, the first pipeline to ask claims it."""
    promotion = promotions.get(session, promotion_id) if promotion_id is not None else None
    if promotion_id is not None:
        problem = _promotion_problem(promotion, promotion_id, row)
        if problem is not None:
            return Decision(False, (problem,))
    decision = for_image(session, row, promotion is not None and promotion.kind == "rollback")
    if not decision.allowed or promotion is None or pipeline_id is None:
        return decision
    if promotions.claim(session, promotion.id, pipeline_id):
        return decision
    owner = promotions.pipeline_of(session, promotion.id)
    return Decision(False, (Reason(
        "promotion_claimed",
        f"promotion {promotion.id} is being deployed by pipeline {owner}, not {pipeline_id}",
        "nothing to do here: the other pipeline deploys it (request a new promotion if it fails)",
        {"pipeline_id": owner}),))


def _promotion_problem(promotion: Promotion | None, promotion_id: int,
                       row: GateRow) -> Reason | None:
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
