"""Images: registration (idempotent by repository + digest), revocation (of every release
containing the image), and what the API shows of one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended, Listing
from ..db.models import Environment, Image, Release, utcnow
from ..domain import repositories
from ..domain.actor import Actor
from ..domain.releases import Member
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
    rollouts,
    scans,
    verifications,
)
from ..store import releases as release_rows
from . import lookups

AUDITED = ("repository", "digest", "commit_sha", "ref", "tags", "pipeline_id", "triggered_by",
           "commit_author", "registered_via")
_NEW_IMAGE = {c: None for c in ("commit_sha", "commit_time", "ref", "pipeline_id", "pipeline_url",
                                 "triggered_by", "commit_author", "revoked_at", "revoked_by",
                                 "revoked_reason")}
_NEW_IMAGE["tags"] = []


def check_owned(policies: PolicySet, project: str, repository: str, built: bool) -> None:
    """A built image's repository must be the project's; a third-party image (built=False) may
    be any, and may already be another project's: it is shared, not owned."""
    if built and not owns(policies, project, repository):
        prefixes = policies.for_project(project).repositories
        raise Forbidden(f"{repository} is not a repository of project {project}: "
                        f"{repositories.ownership_rule(project, prefixes)}")


def owns(policies: PolicySet, project: str, repository: str) -> bool:
    """Whether the repository is one of the project's (its path, or its policy's prefixes)."""
    return repositories.owns(project, repository, policies.for_project(project).repositories)


def ensure_image(session: Session, actor: Actor, policies: PolicySet, *, project: str,
                 project_id: int, member: Member, fields: dict[str, Any]) -> tuple[Image, bool]:
    """In the caller's write transaction: the member's image row, inserted if new.

    The unique key (repository, digest) settles a race: the loser reads the winner's row.
    Core statements rather than the ORM's unit of work: registration is on every pipeline's
    path. A row another project made by pinning the image as a third-party member passes to
    the project that owns its repository when that project registers the image as built, so
    no project can block another's images by naming them first.
    """
    image = images.find(session, member.repository, member.digest)
    if image is None:
        values = dict(_NEW_IMAGE, project_id=project_id, repository=member.repository,
                      digest=member.digest, registered_by=actor.name, created_at=utcnow(),
                      registered_via="id_token" if actor.pipeline else "token",
                      **(_pipeline_facts(fields) if member.built else {}))  # third-party: not ours
        image = images.insert_new(session, values)
        if image is not None:
            audit.append(session, actor, "image.registered", "image", image.id,
                         after={k: values.get(k) for k in AUDITED} | {"project": project})
            return image, True
        image = images.find(session, member.repository, member.digest)
    if member.built and image is not None and image.project_id != project_id:
        _claim_if_pinned_by_another(session, actor, policies, image, project, project_id,
                                    fields)
    return same_project(session, image, project, member.built), False


def _claim_if_pinned_by_another(session: Session, actor: Actor, policies: PolicySet,
                                image: Image, project: str, project_id: int,
                                fields: dict[str, Any]) -> None:
    """Give the image to `project` (which owns its repository) if the project holding it
    does not: that one only pinned it as a third-party member, never built it."""
    holder = images.project_path(session, image)
    if owns(policies, holder, image.repository):
        return
    images.claim(session, image.id, project_id=project_id, **_pipeline_facts(fields))
    session.refresh(image)
    audit.append(session, actor, "image.claimed", "image", image.id,
                 before={"project": holder},
                 after={k: getattr(image, k) for k in AUDITED} | {"project": project})


def _pipeline_facts(fields: dict[str, Any]) -> dict[str, Any]:
    """The image columns a built registration's pipeline facts fill, its time as stored."""
    facts = {k: v for k, v in fields.items() if k in _NEW_IMAGE}
    if "commit_time" in facts:
        facts["commit_time"] = parse_time(facts["commit_time"])
    return facts


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


def same_project(session: Session, image: Image | None, project: str,
                 built: bool = True) -> Image:
    """The image, if a built one is the project's (a 409 names its project if not)."""
    if image is None:  # pragma: no cover - a concurrent delete; there is no delete
        raise NotFound("image vanished while registering")
    path = images.project_path(session, image)
    if built and path != project:
        raise Conflict(f"{image.repository}@{image.digest} is already registered for project "
                       f"{path!r}, not {project!r}")
    return image


def revoke(session: Session, actor: Actor, image_id: int, reason: str) -> dict[str, Any]:
    """Revoke an image for good: no release containing it goes anywhere; says which releases
    contain it and where they still run.

    Their promotions still on their way fail, and their GitLab calls not yet sent are cancelled.
    """
    with write_transaction(session):
        image = lookups.image_by_id(session, image_id)
        lookups.check_image_scope(session, actor, image)
        containing = release_rows.containing(session, image.id)
        if image.revoked_at is None:
            image.revoked_at, image.revoked_by, image.revoked_reason = (
                utcnow(), actor.name, reason)
            session.flush()
            release_rows.mark_revoked(session, [r.id for r in containing],
                                      revoked_member_reason(containing, image, reason))
            message = f"cancelled: the image was revoked ({reason})"
            cancelled = promotions.fail_in_flight(session, [r.id for r in containing], message)
            outbox.cancel_for_promotions(session, cancelled, message)
            audit.append(session, actor, "image.revoked", "image", image.id,
                         before={"revoked": False},
                         after={"revoked": True, "reason": reason,
                                "releases": _running(session, containing),
                                "running_in": running_in(session, image),
                                "cancelled_promotions": cancelled})
    return {"image": image, "running_in": running_in(session, image),
            "releases": _running(session, containing)}


def revoked_member_reason(containing: list[Release], image: Image, reason: str) -> str:
    """Why a release containing the revoked image is revoked, naming the member."""
    names = sorted({m.name for r in containing for m in r.members if m.image_id == image.id})
    return f"{' and '.join(names) or image.repository} was revoked: {reason}"


def _running(session: Session, containing: list[Release]) -> list[dict[str, Any]]:
    live: dict[int, list[str]] = {}
    for project_id in {r.project_id for r in containing}:  # a third-party image is shared
        live.update(live_releases(session, project_id))
    return [{"id": r.id, "digest": r.digest, "environments": live.get(r.id, [])}
            for r in containing]


def live_releases(session: Session, project_id: int) -> dict[int, list[str]]:
    """Release id -> the environments of the project where it is live."""
    live: dict[int, list[str]] = {}
    for env in projects.environments(session, project_id):
        current = rollouts.current(session, env.id)
        if current is not None:
            live.setdefault(current.release_id, []).append(env.name)
    return live


def running_in(session: Session, image: Image) -> list[str]:
    """Environments of its project whose current release contains this image."""
    ids = {r.id for r in release_rows.containing(session, image.id)}
    return [name for release_id, names in live_releases(session, image.project_id).items()
            if release_id in ids for name in names]


def listing(session: Session, actor: Actor, **filters: Any) -> Listing:
    """Images, newest first (filter by project, repository, digest, commit, revoked); a
    project-scoped token sees its project's."""
    return images.listing(session, **lookups.scoped_filters(actor, filters))


def detail(session: Session, actor: Actor, image_id: int) -> Extended:
    """An image with its project, latest scan, its one-member release and that release's
    state in each environment."""
    image = lookups.image_by_id(session, image_id)
    lookups.check_image_scope(session, actor, image)
    return Extended(image, project=images.project_path(session, image),
                    release_id=release_rows.one_member_of_image(session, image.id),
                    scan=scans.latest(session, image.id),
                    environments=[_status_in(session, image, env)
                                  for env in projects.environments(session, image.project_id)])


def _status_in(session: Session, image: Image, env: Environment) -> dict[str, Any]:
    """The state of the image's one-member release in the environment."""
    release_id = release_rows.one_member_of_image(session, image.id) or 0
    deployment = deployments.latest(session, release_id, env.id)
    verification = verifications.latest(session, release_id, env.id)
    promotion = promotions.latest(session, release_id, env.id)
    live = rollouts.current(session, env.id)
    return {
        "environment": env.name,
        "live": live is not None and live.release_id in {
            r.id for r in release_rows.containing(session, image.id)},
        "deployment": deployment and {"id": deployment.id, "state": deployment.state},
        "verification": verification and {"id": verification.id, "passed": verification.passed},
        "promotion": promotion and {"id": promotion.id, "state": promotion.state},
        "approvals": [{"id": a.id, "actor": a.actor, "decision": a.decision}
                      for a in approvals.standing(session, release_id, env.id)],
    }
