"""Releases: registration (idempotent by content: same members and template, same release),
and what the API shows of one. An image registered alone is a one-member release."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.listing import Extended, Listing
from ..db.models import Image, Release, utcnow
from ..domain.actor import Actor
from ..domain.releases import DEFAULT_MEMBER, Member, identity, member_problem, members_from
from ..errors import Conflict, Invalid, NotFound
from ..policy_file import PolicySet
from ..store import audit
from ..store import images as image_rows
from ..store import releases as release_rows
from . import images, lookups
from .projects import ensure_project

PIPELINE_FIELDS = ("commit_sha", "commit_time", "ref", "tags", "pipeline_id", "pipeline_url",
                   "triggered_by", "commit_author")


def register(session: Session, actor: Actor, policies: PolicySet, *, project: str,
             members: list[dict[str, Any]], template_hash: str | None = None,
             gitlab_project_id: int | None = None, **fields: Any) -> tuple[Release, bool]:
    """The release (created=True) or the one already registered with the same identity.

    Every built member's repository must be the project's; pipeline facts come from the
    job's ID token when it has one. Members' images are registered if new, in the release's
    own write transaction: a refused or failed registration leaves nothing behind.
    """
    lookups.check_scope(actor, project)
    wanted = members_from(members)
    problem = member_problem(wanted)
    if problem is not None:
        raise Invalid.field("members", problem)
    for member in wanted:
        images.check_owned(policies, project, member.repository, member.built)
    fields = images.signed_fields(actor, fields)
    digest = identity(wanted, template_hash)
    release_id, created = release_rows.id_of(session, digest), False
    if release_id is None:
        with write_transaction(session):
            release_id = release_rows.id_of(session, digest)  # registered while we waited
            if release_id is None:
                project_id = ensure_project(session, actor, project, policies,
                                            gitlab_project_id).id
                resolved = [(member, images.ensure_image(
                    session, actor, policies, project=project, project_id=project_id,
                    member=member, fields=fields)[0]) for member in wanted]
                release_id, created = ensure(session, actor, project_id, project, resolved,
                                             template_hash, fields)
    return _same_project(session, release_id, project), created


def register_image(session: Session, actor: Actor, policies: PolicySet, *, project: str,
                   repository: str, digest: str, name: str = DEFAULT_MEMBER,
                   gitlab_project_id: int | None = None,
                   **fields: Any) -> tuple[Extended, bool]:
    """POST /images: the image (created=True if new) and its one-member release's id, both
    registered in one write transaction."""
    lookups.check_scope(actor, project)
    images.check_owned(policies, project, repository, True)
    fields = images.signed_fields(actor, fields)
    member = Member(name, repository, digest)
    image = image_rows.find(session, repository, digest)
    release_id = release_rows.id_of(session, identity([member], None)) if image else None
    if image is not None and release_id is not None:  # the hot path: reads only
        return Extended(images.same_project(session, image, project),
                        release_id=release_id), False
    with write_transaction(session):
        project_id = ensure_project(session, actor, project, policies, gitlab_project_id).id
        image, created = images.ensure_image(session, actor, policies, project=project,
                                             project_id=project_id, member=member,
                                             fields=fields)
        release_id, _ = ensure(session, actor, project_id, project, [(member, image)], None,
                               fields)
    return Extended(image, release_id=release_id), created


def ensure(session: Session, actor: Actor, project_id: int, project: str,
           members: list[tuple[Member, Image]], template_hash: str | None,
           fields: dict[str, Any]) -> tuple[int, bool]:
    """In the caller's write transaction: the id of the release of these (registered) member
    images, inserted if new (created=True).

    The unique key (the identity digest) settles a race: the loser reads the winner's id.
    """
    digest = identity([m for m, _ in members], template_hash)
    revoked = [(m, image) for m, image in members if image.revoked_at is not None]
    values = {k: fields.get(k) for k in PIPELINE_FIELDS} | {
        "project_id": project_id, "digest": digest, "template_hash": template_hash,
        "member_count": len(members), "registered_by": actor.name,
        "registered_via": "id_token" if actor.pipeline else "token",
        "created_at": utcnow(), "tags": fields.get("tags") or [],
        "revoked_at": utcnow() if revoked else None,
        "revoked_reason": "; ".join(f"{m.name} was revoked: {image.revoked_reason}"
                                    for m, image in revoked) or None}
    values["commit_time"] = images.parse_time(values["commit_time"])
    release_id = release_rows.insert_new(session, values, [
        {"name": m.name, "image_id": image.id, "repository": m.repository,
         "digest": m.digest, "built": m.built} for m, image in members])
    if release_id is None:
        return release_rows.id_of(session, digest), False  # type: ignore[return-value]
    audit.append(session, actor, "release.registered", "release", release_id, after={
        "project": project, "digest": digest, "template_hash": template_hash,
        "members": [[m.name, m.repository, m.digest, m.built] for m, _ in members],
        **{k: values[k] for k in ("commit_sha", "ref", "pipeline_id", "triggered_by",
                                  "registered_via")}})
    return release_id, True


def _same_project(session: Session, release_id: int, project: str) -> Release:
    release = release_rows.get(session, release_id)
    if release is None:  # pragma: no cover - there is no delete
        raise NotFound("release vanished while registering")
    path = release_rows.project_path(session, release)
    if path != project:
        raise Conflict(f"release {release.digest} is already registered for project {path!r}, "
                       f"not {project!r}")
    return release


def listing(session: Session, actor: Actor, **filters: Any) -> Listing:
    """Releases, newest first (filter by project, digest, commit, revoked); a project-scoped
    token sees its project's."""
    return release_rows.listing(session, **lookups.scoped_filters(actor, filters))


def detail(session: Session, actor: Actor, release_id: int) -> Extended:
    """A release with its project and the environments where it is live."""
    release = lookups.release_by_id(session, release_id)
    path = release_rows.project_path(session, release)
    lookups.check_scope(actor, path)
    live = images.live_releases(session, release.project_id)
    return Extended(release, project=path, environments=live.get(release.id, []))
