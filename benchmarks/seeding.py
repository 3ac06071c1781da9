"""Bulk seeding shared by the benchmarks: images inserted in one statement get their one-member
releases the way migration 0006 gives them (the release's id is the image's)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from promotion_service.domain.releases import DEFAULT_MEMBER, Member, identity


def one_member_releases(session: Session, project_id: int,
                        images: list[tuple[int, dict]]) -> None:
    """A release of one member for each (image id, image row) just inserted, carrying the
    row's pipeline facts."""
    session.execute(text(
        "INSERT INTO releases (id, project_id, digest, member_count, tags, commit_sha, "
        "commit_time, registered_by, created_at) VALUES (:id, :project_id, :digest, 1, '[]', "
        ":commit_sha, :commit_time, :registered_by, CURRENT_TIMESTAMP)"),
        [{"id": image_id, "project_id": project_id, "commit_sha": row.get("commit_sha"),
          "commit_time": row.get("commit_time"), "registered_by": row["registered_by"],
          "digest": identity([Member(DEFAULT_MEMBER, row["repository"], row["digest"])], None)}
         for image_id, row in images])
    session.execute(text(
        "INSERT INTO release_members (release_id, name, image_id, repository, digest, built) "
        "VALUES (:id, :name, :id, :repository, :digest, :built)"),
        [{"id": image_id, "name": DEFAULT_MEMBER, "repository": row["repository"],
          "digest": row["digest"], "built": True} for image_id, row in images])
