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
    job's ID token when it has one. Members' images are registered if new.
    """
    lookups.check_scope(actor, project)
    wanted = members_from(members)
    problem = member_problem(wanted)
    if problem is not None:
        raise Invalid.field("members", problem)
    fields = images.signed_fields(actor, fields)
    existing = release_rows.id_of(session, identity(wanted, template_hash))
    if existing is not None:
        return _same_project(session, existing, project), False
    resolved = [(member, images.ensure_image(
        session, actor, policies, project=project, repository=member.repository,
        digest=member.digest, built=member.built, fields=fields,
        gitlab_project_id=gitlab_project_id)[0]) for member in wanted]
    project_id = next((image.project_id for m, image in resolved if m.built), None)
    if project_id is None:  # third-party images only (they may be other projects' too)
        with write_transaction(session):
            project_id = ensure_project(session, actor, project, policies,
                                        gitlab_project_id).id
    release_id, created = ensure(session, actor, project_id, project, resolved, template_hash,
                                 fields)
    return release_rows.get(session, release_id), created  # type: ignore[return-value]


def register_image(session: Session, actor: Actor, policies: PolicySet, *, project: str,
                   repository: str, digest: str, name: str = DEFAULT_MEMBER,
                   gitlab_project_id: int | None = None,
                   **fields: Any) -> tuple[Extended, bool]:
    """POST /images: the image (created=True if new) and its one-member release's id."""
    fields = images.signed_fields(actor, fields)
    image, created = images.ensure_image(
        session, actor, policies, project=project, repository=repository, digest=digest,
        built=True, fields=fields, gitlab_project_id=gitlab_project_id)
    release_id, _ = ensure(session, actor, image.project_id, project,
                           [(Member(name, repository, digest), image)], None, fields)
    return Extended(image, release_id=release_id), created


def ensure(session: Session, actor: Actor, project_id: int, project: str,
           members: list[tuple[Member, Image]], template_hash: str | None,
           fields: dict[str, Any]) -> tuple[int, bool]:
    """The id of the release of these (registered) member images, inserted if new.

    Writers go one at a time, so the read inside the write transaction settles a race.
    """
    digest = identity([m for m, _ in members], template_hash)
    existing = release_rows.id_of(session, digest)
    if existing is not None:
        return existing, False
    with write_transaction(session):
        existing = release_rows.id_of(session, digest)
        if existing is not None:
            return existing, False
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
        release_id = release_rows.insert_row(session, values, [
            {"name": m.name, "image_id": image.id, "repository": m.repository,
             "digest": m.digest, "built": m.built} for m, image in members])
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
