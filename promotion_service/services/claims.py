"""Claims: a deploy (or rollback) pipeline says "this one is mine" before it deploys.

The first pipeline to claim a promotion deploys it; any other is refused, so a promotion
triggered twice deploys once. A claim is a write by the pipeline's own identity (its ID token's
pipeline, or the pipeline id a service token gives), audited. Two kinds:

deploy    the deploy job of CD_IMAGE claims its promotion (CD_PROMOTION_ID, else the one in
          flight). An old deploy job run again (GitLab's environment "Rollback" button) names
          a promotion that is over: when its image was verified in that environment, this
          becomes a rollback to it, and holds the environment, as every rollback does.
rollback  the rollback job claims going back to a release verified there: CD_ROLLBACK_TO (the
          release a service rollback chose), --to RELEASE, or the service's choice (the last
          verified release before the live one, of another release, never one rolled
          back out of the environment). The answer names the release, which the job
          restores from the target's own records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended
from ..db.models import Environment, Promotion, Release, Rollout
from ..domain.actor import Actor
from ..domain.policy import Reason
from ..domain.states import IN_FLIGHT
from ..errors import Invalid, NotFound, Refused
from ..store import audit, projects, promotions, releases, rollouts
from . import gate, holds, lookups, promotion
from .gate import claimed_by_other, promotion_problem


@dataclass(frozen=True)
class Claim:
    """What a pipeline claimed: the promotion it deploys and, for a rollback, the release."""

    promotion: Extended
    record_id: str | None
    hold: dict[str, str] | None


def claim(session: Session, actor: Actor, *, kind: str, environment: str,
          repository: str | None = None, digest: str | None = None,
          release_id: int | None = None, project: str | None = None,
          promotion_id: int | None = None, record_id: str | None = None,
          pipeline_id: int | None = None, job_url: str | None = None) -> Claim:
    """Claim a deploy or a rollback for the caller's pipeline; Refused (409) with the reasons."""
    pipeline = claiming_pipeline(actor, pipeline_id)
    lookups.check_job_environment(actor, environment)
    with write_transaction(session):
        release, env = _target(session, actor, kind, environment, project, promotion_id,
                               release_id=release_id, repository=repository, digest=digest)
        if kind == "rollback":
            found = _rollback(session, actor, env, release, promotion_id, record_id, pipeline)
        else:
            found = _deploy(session, actor, env, release, promotion_id, pipeline)
        release = releases.get(session, found.release_id)
        if not promotions.claim(session, found.id, pipeline):  # writers go one at a time
            _refuse(env, release, claimed_by_other(
                found.id, promotions.pipeline_of(session, found.id), pipeline))
        audit.append(session, actor, "promotion.claimed", "promotion", found.id,
                     after={"pipeline_id": pipeline, "job_url": job_url, "kind": found.kind,
                            "release_id": found.release_id, "record_id": found.record_id,
                            "environment": env.name})
        return Claim(promotions.named(found, release, env), found.record_id, holds.shown(env))


def claiming_pipeline(actor: Actor, pipeline_id: int | None) -> int:
    """The pipeline that claims: its ID token's (signed), else the one a token names."""
    if actor.pipeline is not None:
        if pipeline_id is not None and pipeline_id != actor.pipeline.pipeline_id:
            raise Invalid.field("pipeline_id", f"this job's ID token is of pipeline "
                                f"{actor.pipeline.pipeline_id}, not {pipeline_id}")
        return actor.pipeline.pipeline_id
    if pipeline_id is None:
        raise Invalid.field("pipeline_id", "required with a service token: the id of the "
                                           "pipeline that deploys (CI_PIPELINE_ID)")
    return pipeline_id


def _target(session: Session, actor: Actor, kind: str, environment: str,
            project: str | None, promotion_id: int | None,
            **names: Any) -> tuple[Release | None, Environment]:
    """The release (if named, or an image's one-member release) and the environment, within
    the caller's project scope."""
    if names["release_id"] is not None or (names["repository"] and names["digest"]):
        release = lookups.release(session, **names)
        path = releases.project_path(session, release)
        if project is not None and project != path:
            raise Invalid.field("project", f"the release belongs to project {path}")
        lookups.check_scope(actor, path)
        return release, lookups.environment(session, release.project_id, environment)
    if kind == "deploy":
        raise Invalid.field("release_id", "a deploy claims the release it deploys: release_id "
                                          "(CD_RELEASE_ID), or repository and digest "
                                          "(CD_IMAGE)")
    if project is None and promotion_id is not None:
        named = promotions.get(session, promotion_id)
        project = named and projects.path_of_environment(session, named.environment_id)
    path = project or actor.project
    if path is None:
        raise Invalid.field("project", "which project rolls back? (CI_PROJECT_PATH)")
    found = projects.by_path(session, path)
    if found is None:
        raise NotFound(f"no project {path!r} in the service")
    lookups.check_scope(actor, found.path)
    return None, lookups.environment(session, found.id, environment)


def _deploy(session: Session, actor: Actor, env: Environment, release: Release,
            promotion_id: int | None, pipeline: int) -> Promotion:
    """The promotion this deploy job deploys (an old one over and verified: a rollback)."""
    row = gate.lookup(session, env.name, release_id=release.id)
    if promotion_id is None:
        found = promotions.in_flight(session, release.id, env.id)
        if found is None:
            _refuse(env, release, Reason(
                "promotion_unknown",
                f"no promotion of this release into {env.name} is in flight",
                "deploys into this environment come from promotions: request one (POST "
                "/api/v1/promotions) or let policy promote the release"))
    else:
        found = promotions.get(session, promotion_id)
        problem = promotion_problem(found, promotion_id, row)
        verified = rollouts.verified(session, env.id, release_id=release.id)
        if problem is not None and problem.code == "promotion_closed" and verified is not None:
            # an old deploy job run again (GitLab's Rollback button): back to a verified rollout
            _refuse_rolled_back(session, env, release)
            found = _new_rollback(session, actor, env, release, verified, pipeline,
                                  f"deploy job of promotion {promotion_id} run again")
        elif problem is not None:
            _refuse(env, release, problem)
    if found.pipeline_id not in (None, pipeline):
        _refuse(env, release, claimed_by_other(found.id, found.pipeline_id, pipeline))
    decision = gate.for_release(row, found.kind == "rollback")
    if not decision.allowed:
        _refuse(env, release, *decision.reasons)
    return found


def _rollback(session: Session, actor: Actor, env: Environment, release: Release | None,
              promotion_id: int | None, record_id: str | None, pipeline: int) -> Promotion:
    """The rollback promotion this job carries out (the service's, or a new one)."""
    if promotion_id is not None:
        found = promotions.get(session, promotion_id)
        if (found is not None and found.kind == "rollback" and found.state in IN_FLIGHT
                and found.environment_id == env.id
                and record_id in (None, found.record_id)):
            if found.pipeline_id not in (None, pipeline):
                _refuse(env, None, claimed_by_other(found.id, found.pipeline_id, pipeline))
            return found
    if record_id is not None:
        target = rollouts.verified(session, env.id, record_id=record_id)
        if target is None:
            _refuse(env, None, Reason(
                "release_not_verified",
                f"record {record_id} was never verified in {env.name} (or is unknown there)",
                "roll back to a record verified there: see GET /api/v1/projects/<id>/"
                f"environments/{env.name}/releases"))
    else:
        target = rollouts.rollback_target(session, env)
        if target is None:
            _refuse(env, None, Reason(
                "nothing_to_roll_back_to",
                f"{env.name} has no earlier verified release of another, unrevoked release "
                f"that was not rolled back out of {env.name}",
                "nothing to do: no release to go back to"))
    if release is not None and target.release_id != release.id:
        _refuse(env, None, Reason("release_mismatch",
                                  f"record {target.record_id} is of another release",
                                  "name the release the record runs"))
    rollback_release = releases.get(session, target.release_id)
    _refuse_rolled_back(session, env, rollback_release)
    if rollback_release.revoked_at is not None:
        _refuse(env, None, Reason("revoked", f"the release of record {target.record_id} "
                                             f"was revoked ({rollback_release.revoked_reason})",
                                  "roll back to another release"))
    return _new_rollback(session, actor, env, rollback_release, target, pipeline,
                         "rollback job" + (f" to record {record_id}" if record_id else ""))


def _refuse_rolled_back(session: Session, env: Environment, release: Release) -> None:
    """A rollback goes back: never to a release rolled back out of the environment."""
    found = rollouts.rolled_back_out(session, env, release.id)
    if found is not None:
        gone = found[1]
        _refuse(env, release, Reason(
            "rolled_back", f"release {release.id} was {gone.described}",
            "a rollback goes back, not forward: to bring it back, roll it forward by an "
            f"explicit promotion into {env.name} with a reason (POST /api/v1/promotions)",
            {"environment": env.name, "by": gone.by}))


def _new_rollback(session: Session, actor: Actor, env: Environment, release: Release,
                  target: Rollout, pipeline: int, why: str) -> Promotion:
    """A rollback promotion run by the claiming pipeline (no other is triggered); holds."""
    existing = promotions.in_flight(session, release.id, env.id)
    if existing is not None:
        if existing.pipeline_id not in (None, pipeline):
            _refuse(env, None, claimed_by_other(existing.id, existing.pipeline_id, pipeline))
        return existing
    created, _ = promotion.create(session, actor, release, env, "rollback", why,
                                  record_id=target.record_id, trigger=False)
    holds.set_hold(session, actor, env, f"rollback to release {release.id}"
                   + (f" (record {target.record_id})" if target.record_id else "")
                   + f" by {actor.name}: {why}")
    return created


def _refuse(env: Environment, release: Release | None, *reasons: Reason) -> NoReturn:
    what = (f"{release.label} may not be deployed to {env.name}" if release
            else f"{env.name} may not be rolled back")
    raise Refused(what, reasons=[r.to_dict() for r in reasons])
