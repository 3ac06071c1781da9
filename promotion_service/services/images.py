"""Images: registration (idempotent by repository + digest), revocation, and what the API
shows of one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended, Listing
from ..db.models import Environment, Image, utcnow
from ..domain import repositories
from ..domain.actor import Actor
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..policy_file import PolicySet
from ..store import (
    approvals,
    audit,
    deployments,
    images,
    outbox,
    projects,
    promotions,
    releases,
    scans,
    verifications,
)
from . import lookups
from .projects import ensure_project

AUDITED = ("repository", "digest", "commit_sha", "ref", "tags", "pipeline_id", "triggered_by",
           "commit_author", "registered_via")
_NEW_IMAGE = {c: None for c in ("commit_sha", "commit_time", "ref", "pipeline_id", "pipeline_url",
                                 "triggered_by", "commit_author", "revoked_at", "revoked_by",
                                 "revoked_reason")}
_NEW_IMAGE["tags"] = []


class _RegisteredMeanwhile(Exception):
    """Another request registered the digest between our read and our INSERT."""


def register(session: Session, actor: Actor, policies: PolicySet, *, project: str,
             repository: str, digest: str, gitlab_project_id: int | None = None,
             **fields: Any) -> tuple[Image, bool]:
    """The image (created=True) or the one already registered with this digest.

    Registration is on every pipeline's path: Core statements rather than the ORM's unit of
    work, reads before the write lock, and the lock held only for the two INSERTs.
    """
    lookups.check_scope(actor, project)
    prefixes = policies.for_project(project).repositories
    if not repositories.owns(project, repository, prefixes):
        raise Forbidden(f"{repository} is not a repository of project {project}: "
                        f"{repositories.ownership_rule(project, prefixes)}")
    fields = signed_fields(actor, fields)
    existing, project_id = images.ids(session, repository, digest, project)
    if existing is not None:
        return _same_project(session, images.get(session, existing), project), False
    try:
        with write_transaction(session):
            if project_id is None:
                project_id = ensure_project(session, actor, project, policies,
                                            gitlab_project_id).id
            values = dict(_NEW_IMAGE, project_id=project_id, repository=repository,
                          digest=digest, registered_by=actor.name, created_at=utcnow(),
                          registered_via="id_token" if actor.pipeline else "token", **fields)
            values["commit_time"] = parse_time(values["commit_time"])
            try:
                image = images.insert_row(session, values)
            except IntegrityError:
                raise _RegisteredMeanwhile from None
            audit.append(session, actor, "image.registered", "image", image.id,
                         after={k: values.get(k) for k in AUDITED} | {"project": project})
    except _RegisteredMeanwhile:
        return _same_project(session, images.find(session, repository, digest), project), False
    return image, True


def signed_fields(actor: Actor, fields: dict[str, Any]) -> dict[str, Any]:
    """The registration's pipeline facts: from the job's ID token when it has one (a body that
    says otherwise is refused, naming the field), else as the body gives them."""
    fields = dict(fields)
    if fields.get("triggered_by"):  # a name a token gives only ever adds someone to keep out
        fields["triggered_by"] = fields["triggered_by"].strip().casefold()
    pipeline = actor.pipeline
    if pipeline is None:
        return fields
    signed = {"commit_sha": pipeline.sha, "ref": pipeline.ref,
              "pipeline_id": pipeline.pipeline_id, "triggered_by": pipeline.user}
    for key, value in signed.items():
        if value is None:
            continue
        given = fields.get(key)
        if given is not None and str(given).casefold() != str(value).casefold():
            raise Invalid.field(key, f"this job's ID token says {value!r}; the {key} of an "
                                "image comes from the token GitLab signed, not from the body")
        fields[key] = value
    return fields


def parse_time(value: datetime | None) -> datetime | None:
    """Naive UTC, the way every timestamp is stored."""
    if value is None or value.tzinfo is None:
        return value
    return (value - value.utcoffset()).replace(tzinfo=None)


def _same_project(session: Session, image: Image | None, project: str) -> Image:
    if image is None:  # pragma: no cover - a concurrent delete; there is no delete
        raise NotFound("image vanished while registering")
    path = images.project_path(session, image)
    if path != project:
        raise Conflict(f"{image.repository}@{image.digest} is already registered for project "
                       f"{path!r}, not {project!r}")
    return image


def revoke(session: Session, actor: Actor, image_id: int, reason: str) -> dict[str, Any]:
    """Revoke an image for good: no promotion anywhere; says where it still runs.

    Its promotions still on their way fail, and their GitLab calls not yet sent are cancelled.
    """
    with write_transaction(session):
        image = lookups.image_by_id(session, image_id)
        lookups.check_image_scope(session, actor, image)
        if image.revoked_at is None:
            image.revoked_at, image.revoked_by, image.revoked_reason = (
                utcnow(), actor.name, reason)
            session.flush()
            message = f"cancelled: the image was revoked ({reason})"
            cancelled = promotions.fail_in_flight(session, image.id, message)
            outbox.cancel_for_promotions(session, cancelled, message)
            audit.append(session, actor, "image.revoked", "image", image.id,
                         before={"revoked": False},
                         after={"revoked": True, "reason": reason,
                                "running_in": running_in(session, image),
                                "cancelled_promotions": cancelled})
    return {"image": image, "running_in": running_in(session, image)}


def running_in(session: Session, image: Image) -> list[str]:
    """Environments whose current release is this image."""
    return [env.name for env in projects.environments(session, image.project_id)
            if (cur := releases.current(session, env.id)) is not None and cur.image_id == image.id]


def listing(session: Session, actor: Actor, **filters: Any) -> Listing:
    """Images, newest first (filter by project, repository, digest, commit, revoked); a
    project-scoped token sees its project's."""
    return images.listing(session, **lookups.scoped_filters(actor, filters))


def detail(session: Session, actor: Actor, image_id: int) -> Extended:
    """An image with its project, latest scan and its state in each environment."""
    image = lookups.image_by_id(session, image_id)
    lookups.check_image_scope(session, actor, image)
    return Extended(image, project=images.project_path(session, image),
                    scan=scans.latest(session, image.id),
                    environments=[_status_in(session, image, env)
                                  for env in projects.environments(session, image.project_id)])


def _status_in(session: Session, image: Image, env: Environment) -> dict[str, Any]:
    deployment = deployments.latest(session, image.id, env.id)
    verification = verifications.latest(session, image.id, env.id)
    promotion = promotions.latest(session, image.id, env.id)
    live = releases.current(session, env.id)
    return {
        "environment": env.name,
        "live": live is not None and live.image_id == image.id,
        "deployment": deployment and {"id": deployment.id, "state": deployment.state},
        "verification": verification and {"id": verification.id, "passed": verification.passed},
        "promotion": promotion and {"id": promotion.id, "state": promotion.state},
        "approvals": [{"id": a.id, "actor": a.actor, "decision": a.decision}
                      for a in approvals.standing(session, image.id, env.id)],
    }
