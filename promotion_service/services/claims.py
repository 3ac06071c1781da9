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
          verified release before the live one, of another image). The answer names the
          release, which the job restores from the target's own records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended
from ..db.models import Environment, Image, Promotion, Release
from ..domain.actor import Actor
from ..domain.policy import Reason
from ..domain.states import IN_FLIGHT
from ..errors import Invalid, NotFound, Refused
from ..store import audit, images, projects, promotions, releases
from . import gate, holds, lookups, promotion
from .gate import claimed_by_other, promotion_problem


@dataclass(frozen=True)
class Claim:
    """What a pipeline claimed: the promotion it deploys and, for a rollback, the release."""

    promotion: Extended
    release_id: str | None
    hold: dict[str, str] | None


def claim(session: Session, actor: Actor, *, kind: str, environment: str,
          repository: str | None = None, digest: str | None = None,
          project: str | None = None, promotion_id: int | None = None,
          release_id: str | None = None, pipeline_id: int | None = None,
          job_url: str | None = None) -> Claim:
    """Claim a deploy or a rollback for the caller's pipeline; Refused (409) with the reasons."""
    pipeline = claiming_pipeline(actor, pipeline_id)
    lookups.check_job_environment(actor, environment)
    with write_transaction(session):
        image, env = _target(session, actor, kind, environment, repository, digest, project,
                             promotion_id)
        if kind == "rollback":
            found = _rollback(session, actor, env, image, promotion_id, release_id, pipeline)
        else:
            found = _deploy(session, actor, env, image, promotion_id, pipeline)
        image = images.get(session, found.image_id)
        if not promotions.claim(session, found.id, pipeline):  # writers go one at a time
            _refuse(env, image, claimed_by_other(
                found.id, promotions.pipeline_of(session, found.id), pipeline))
        audit.append(session, actor, "promotion.claimed", "promotion", found.id,
                     after={"pipeline_id": pipeline, "job_url": job_url, "kind": found.kind,
                            "release_id": found.release_id, "environment": env.name})
        return Claim(promotions.named(found, image, env), found.release_id, holds.shown(env))


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
            repository: str | None, digest: str | None, project: str | None,
            promotion_id: int | None) -> tuple[Image | None, Environment]:
    """The image (if named) and the environment, within the caller's project scope."""
    if repository and digest:
        image = lookups.image(session, repository, digest)
        path = images.project_path(session, image)
        if project is not None and project != path:
            raise Invalid.field("project", f"the image belongs to project {path}")
        lookups.check_scope(actor, path)
        return image, lookups.environment(session, image.project_id, environment)
    if kind == "deploy":
        raise Invalid.field("digest", "a deploy claims the image it deploys: repository and "
                                      "digest (CD_IMAGE)")
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


def _deploy(session: Session, actor: Actor, env: Environment, image: Image,
            promotion_id: int | None, pipeline: int) -> Promotion:
    """The promotion this deploy job deploys (an old one over and verified: a rollback)."""
    row = gate.lookup(session, image.repository, image.digest, env.name)
    if promotion_id is None:
        found = promotions.in_flight(session, image.id, env.id)
        if found is None:
            _refuse(env, image, Reason(
                "promotion_unknown", f"no promotion of this image into {env.name} is in flight",
                "deploys into this environment come from promotions: request one (POST "
                "/api/v1/promotions) or let policy promote the image"))
    else:
        found = promotions.get(session, promotion_id)
        problem = promotion_problem(found, promotion_id, row)
        verified = releases.verified(session, env.id, image_id=image.id)
        if problem is not None and problem.code == "promotion_closed" and verified is not None:
            # an old deploy job run again (GitLab's Rollback button): back to a verified release
            found = _new_rollback(session, actor, env, image, verified, pipeline,
                                  f"deploy job of promotion {promotion_id} run again")
        elif problem is not None:
            _refuse(env, image, problem)
    if found.pipeline_id not in (None, pipeline):
        _refuse(env, image, claimed_by_other(found.id, found.pipeline_id, pipeline))
    decision = gate.for_image(session, row, found.kind == "rollback")
    if not decision.allowed:
        _refuse(env, image, *decision.reasons)
    return found


def _rollback(session: Session, actor: Actor, env: Environment, image: Image | None,
              promotion_id: int | None, release_id: str | None, pipeline: int) -> Promotion:
    """The rollback promotion this job carries out (the service's, or a new one)."""
    if promotion_id is not None:
        found = promotions.get(session, promotion_id)
        if (found is not None and found.kind == "rollback" and found.state in IN_FLIGHT
                and found.environment_id == env.id
                and release_id in (None, found.release_id)):
            if found.pipeline_id not in (None, pipeline):
                _refuse(env, None, claimed_by_other(found.id, found.pipeline_id, pipeline))
            return found
    if release_id is not None:
        target = releases.verified(session, env.id, release_id=release_id)
        if target is None:
            _refuse(env, None, Reason(
                "release_not_verified",
                f"release {release_id} was never verified in {env.name} (or is unknown there)",
                "roll back to a release verified there: see GET /api/v1/projects/<id>/"
                f"environments/{env.name}/releases"))
    else:
        target = releases.rollback_target(session, env)
        if target is None:
            _refuse(env, None, Reason(
                "nothing_to_roll_back_to",
                f"{env.name} has no earlier verified release of another, unrevoked image",
                "nothing to do: no release to go back to"))
    if image is not None and target.image_id != image.id:
        _refuse(env, None, Reason("release_mismatch",
                                     f"release {target.release_id} is of another image",
                                     "name the image the release runs"))
    rollback_image = images.get(session, target.image_id)
    if rollback_image.revoked_at is not None:
        _refuse(env, None, Reason("revoked", f"the image of release {target.release_id} "
                                                "was revoked", "roll back to another release"))
    return _new_rollback(session, actor, env, rollback_image, target, pipeline,
                         "rollback job" + (f" to release {release_id}" if release_id else ""))


def _new_rollback(session: Session, actor: Actor, env: Environment, image: Image,
                  target: Release, pipeline: int, why: str) -> Promotion:
    """A rollback promotion run by the claiming pipeline (no other is triggered); holds."""
    existing = promotions.in_flight(session, image.id, env.id)
    if existing is not None:
        if existing.pipeline_id not in (None, pipeline):
            _refuse(env, None, claimed_by_other(existing.id, existing.pipeline_id, pipeline))
        return existing
    created, _ = promotion.create(session, actor, image, env, "rollback", why,
                                  release_id=target.release_id, trigger=False)
    holds.set_hold(session, actor, env, f"rollback to image {image.id}"
                   + (f" (release {target.release_id})" if target.release_id else "")
                   + f" by {actor.name}: {why}")
    return created


def _refuse(env: Environment, image: Image | None, *reasons: Reason) -> NoReturn:
    what = (f"{image.repository}@{image.digest} may not be deployed to {env.name}" if image
            else f"{env.name} may not be rolled back")
    raise Refused(what, reasons=[r.to_dict() for r in reasons])
