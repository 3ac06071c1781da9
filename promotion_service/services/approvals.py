"""Approvals and rejections of a digest for an environment; the last approval a policy
needs may start the promotion.

Decisions are a person's: one standing decision per person, image and environment, whichever
of their tokens (or GitLab's UI) gave it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.models import ApprovalRecord, Environment, Image, utcnow
from ..domain.actor import MANAGERS, Actor
from ..domain.identity import authors
from ..errors import Forbidden, NotFound, Unauthorized
from ..store import approvals, audit, images, tokens
from . import lookups, promotion
from .projects import policy_of


def decide(session: Session, actor: Actor, *, repository: str, digest: str, environment: str,
           decision: str, comment: str | None = None,
           expires_in: int | None = None) -> tuple[ApprovalRecord, bool]:
    """Approve or reject; the same decision twice is the same record (created=False)."""
    with write_transaction(session):
        image, env = lookups.image_and_environment(session, repository, digest, environment)
        return record_decision(session, actor, image, env, decision=decision, comment=comment,
                               expires_in=expires_in)


def record_decision(session: Session, actor: Actor, image: Image, env: Environment, *,
                    decision: str, comment: str | None = None, expires_in: int | None = None,
                    given_in: str = "service") -> tuple[ApprovalRecord, bool]:
    """Approve or reject this image for this environment (GitLab's approvals come here too)."""
    with write_transaction(session):
        lookups.check_image_scope(session, actor, image)
        if actor.token_id is not None and (
                (row := tokens.row_by_id(session, actor.token_id)) is None
                or row.revoked_at is not None):
            raise Unauthorized("this token was revoked; its decisions no longer count")
        policy = policy_of(env)
        if actor.role not in policy.approver_roles:
            raise Forbidden(f"{env.name} takes approvals from "
                            f"{', '.join(policy.approver_roles)}; this token's role is "
                            f"{actor.role}")
        excluded = authors(image.registered_by, image.triggered_by, image.commit_author)
        if decision == "approve" and policy.four_eyes and actor.name.casefold() in excluded:
            raise Forbidden(f"four-eyes: {actor.name} wrote, built or registered this image and "
                            f"may not approve it for {env.name}; someone else must")
        standing = approvals.standing_of(session, image.id, env.id, actor.name)
        if standing is not None and standing.decision == decision:
            return standing, False
        if standing is not None:
            _withdraw(session, actor, standing)
        now = utcnow()
        record = approvals.add(
            session, image_id=image.id, environment_id=env.id, actor=actor.name,
            role=actor.role, decision=decision, comment=comment, created_at=now,
            expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
            token_id=actor.token_id, given_in=given_in)
        audit.append(session, actor, f"approval.{decision}", "image", image.id,
                     after={"approval_id": record.id, "environment": env.name,
                            "decision": decision, "comment": comment, "given_in": given_in})
        if decision == "approve":
            promotion.consider_automatic(session, image, env, actor)
        return record, True


def withdraw(session: Session, actor: Actor, approval_id: int) -> ApprovalRecord:
    """Take back an approval or rejection (its author or a release manager)."""
    with write_transaction(session):
        record = approvals.get(session, approval_id)
        if record is None:
            raise NotFound(f"no approval with id {approval_id}")
        image = images.get(session, record.image_id)
        lookups.check_image_scope(session, actor, image)
        if record.actor.casefold() != actor.name.casefold() and actor.role not in MANAGERS:
            raise Forbidden(f"only {record.actor} or a release manager may withdraw this "
                            f"{record.decision}")
        if record.withdrawn_at is None:
            _withdraw(session, actor, record)
            if record.decision == "reject":
                promotion.consider_automatic(
                    session, image, session.get(Environment, record.environment_id), actor)
    return record


def withdraw_given_by_token(session: Session, actor: Actor, token_id: int,
                            why: str) -> list[int]:
    """Withdraw the approvals a token gave that still stand (in the caller's transaction)."""
    withdrawn = []
    for record in approvals.standing_by_token(session, token_id):
        _withdraw(session, actor, record, why)
        withdrawn.append(record.id)
    return withdrawn


def standing(session: Session, actor: Actor, *, repository: str, digest: str,
             environment: str) -> list[ApprovalRecord]:
    """Approvals and rejections standing for an image and environment."""
    image, env = lookups.image_and_environment(session, repository, digest, environment)
    lookups.check_image_scope(session, actor, image)
    return approvals.standing(session, image.id, env.id)


def _withdraw(session: Session, actor: Actor, record: ApprovalRecord,
              why: str | None = None) -> None:
    record.withdrawn_at, record.withdrawn_by = utcnow(), actor.name
    session.flush()
    audit.append(session, actor, "approval.withdrawn", "image", record.image_id,
                 before={"approval_id": record.id, "decision": record.decision,
                         "actor": record.actor},
                 after={"withdrawn": True, **({"why": why} if why else {})})
