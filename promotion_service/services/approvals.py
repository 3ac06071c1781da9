"""Approvals and rejections of a release for an environment; the last approval a policy
needs may start the promotion.

Decisions are a person's: one standing decision per person, release and environment,
whichever of their tokens (or GitLab's UI) gave it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.models import ApprovalRecord, Environment, Release, utcnow
from ..domain.actor import MANAGERS, Actor
from ..errors import Conflict, Forbidden, NotFound, Unauthorized
from ..store import approvals, audit, releases, tokens
from . import lookups, promotion
from .projects import policy_of


def decide(session: Session, actor: Actor, *, environment: str, decision: str,
           comment: str | None = None, expires_in: int | None = None,
           template_hash: str | None = None, **names: Any) -> tuple[ApprovalRecord, bool]:
    """Approve or reject a release (or an image's one-member release); the same decision
    twice is the same record (created=False)."""
    with write_transaction(session):
        release, env = lookups.release_and_environment(session, environment, **names)
        return record_decision(session, actor, release, env, decision=decision,
                               comment=comment, expires_in=expires_in,
                               template_hash=template_hash)


def record_decision(session: Session, actor: Actor, release: Release, env: Environment, *,
                    decision: str, comment: str | None = None, expires_in: int | None = None,
                    template_hash: str | None = None,
                    given_in: str = "service") -> tuple[ApprovalRecord, bool]:
    """Approve or reject this release for this environment (GitLab's approvals come here
    too).

    An approval is a person's, for one rendered template: the one it names, else the first it
    lets deploy. Approving again after the template changed is a new approval (the old one is
    withdrawn).
    """
    with write_transaction(session):
        lookups.check_release_scope(session, actor, release)
        if actor.token_id is not None and (
                (row := tokens.row_by_id(session, actor.token_id)) is None
                or row.revoked_at is not None):
            raise Unauthorized("this token was revoked; its decisions no longer count")
        problem = refusal(session, actor, release, env, decision)
        if problem is not None:
            raise Forbidden(problem)
        standing = approvals.standing_of(session, release.id, env.id, actor.name)
        if standing is not None and standing.decision == decision and (
                decision == "reject" or standing.template_hash == template_hash
                or (template_hash is None and standing.template_hash is None)):
            return standing, False
        if standing is not None:
            _withdraw(session, actor, standing)
        now = utcnow()
        record = approvals.add(
            session, release_id=release.id, environment_id=env.id, actor=actor.name,
            role=actor.role, decision=decision, comment=comment, created_at=now,
            expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
            template_hash=template_hash if decision == "approve" else None,
            token_id=actor.token_id, given_in=given_in)
        audit.append(session, actor, f"approval.{decision}", "release", release.id,
                     after={"approval_id": record.id, "environment": env.name,
                            "decision": decision, "comment": comment,
                            "template_hash": record.template_hash, "given_in": given_in})
        if decision == "approve":
            promotion.consider_automatic(session, release, env, actor)
        return record, True


def refusal(session: Session, actor: Actor, release: Release, env: Environment,
            decision: str) -> str | None:
    """Why this person may not give this decision here (the API's 403 and the page's
    explanation), or None when they may."""
    policy = policy_of(env)
    if actor.role not in policy.approver_roles:
        return (f"{env.name} takes approvals from {', '.join(policy.approver_roles)}; this "
                f"token's role is {actor.role}")
    excluded = releases.authors(session, release)
    if decision == "approve" and policy.four_eyes and actor.name.casefold() in excluded:
        return (f"four-eyes: {actor.name} wrote, built or registered this release (or one of "
                f"its images) and may not approve it for {env.name}; someone else must")
    return None


def withdraw(session: Session, actor: Actor, approval_id: int) -> ApprovalRecord:
    """Take back an approval or rejection (its author or a release manager)."""
    with write_transaction(session):
        record = approvals.get(session, approval_id)
        if record is None:
            raise NotFound(f"no approval with id {approval_id}")
        release = releases.get(session, record.release_id)
        lookups.check_release_scope(session, actor, release)
        if record.actor.casefold() != actor.name.casefold() and actor.role not in MANAGERS:
            raise Forbidden(f"only {record.actor} or a release manager may withdraw this "
                            f"{record.decision}")
        if record.withdrawn_at is None:
            _withdraw(session, actor, record)
            if record.decision == "reject":
                promotion.consider_automatic(
                    session, release, session.get(Environment, record.environment_id), actor)
    return record


def withdraw_given_by_token(session: Session, actor: Actor, token_id: int,
                            why: str) -> list[int]:
    """Withdraw the approvals a token gave that still stand (in the caller's transaction)."""
    withdrawn = []
    for record in approvals.standing_by_token(session, token_id):
        _withdraw(session, actor, record, why)
        withdrawn.append(record.id)
    return withdrawn


def standing(session: Session, actor: Actor, *, environment: str,
             **names: Any) -> list[ApprovalRecord]:
    """Approvals and rejections standing for a release and environment."""
    release, env = lookups.release_and_environment(session, environment, location="query",
                                                   **names)
    lookups.check_release_scope(session, actor, release)
    return approvals.standing(session, release.id, env.id)


def _withdraw(session: Session, actor: Actor, record: ApprovalRecord,
              why: str | None = None) -> None:
    record.withdrawn_at, record.withdrawn_by = utcnow(), actor.name
    session.flush()
    audit.append(session, actor, "approval.withdrawn", "release", record.release_id,
                 before={"approval_id": record.id, "decision": record.decision,
                         "actor": record.actor},
                 after={"withdrawn": True, **({"why": why} if why else {})})


def check_template(session: Session, release: Release, env: Environment,
                   template_hash: str | None) -> None:
    """Refuse (409) a deploy whose rendered template is not the one its approvals are for.

    Only when approvals decide: the policy requires some, and too few of the standing ones are
    for this template because others were given (or let deploy) another one.
    """
    policy = policy_of(env)
    if not template_hash or not policy.required_approvals:
        return
    given = [a for a in approvals.standing(session, release.id, env.id)
             if a.decision == "approve"]
    fitting = [a for a in given if a.template_hash in (None, template_hash)]
    elsewhere = [a for a in given if a.template_hash not in (None, template_hash)]
    if len(fitting) >= policy.required_approvals or not elsewhere:
        return
    approved = sorted({a.template_hash for a in elsewhere if a.template_hash})
    raise Conflict(
        f"this deploy renders template {template_hash}, but the approvals for {env.name} are "
        f"for {', '.join(approved)}: a changed template needs approving again",
        reasons=[{"code": "template_changed",
                  "message": f"approved by {', '.join(sorted(a.actor for a in elsewhere))} for "
                             f"template {', '.join(approved)}; this deploy renders "
                             f"{template_hash}",
                  "fix": "approve the image for this environment again (with template_hash "
                         "to approve exactly this template), then re-run the deploy job",
                  "details": {"template_hash": template_hash, "approved": approved}}])
