"""What the merge-request gate answered for each merge request's head commit."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db.gitlab_models import MergeRequestCheck


def get(session: Session, row_id: int) -> MergeRequestCheck | None:
    """The check with this id, if any."""
    return session.get(MergeRequestCheck, row_id)


def find_or_add(session: Session, *, gitlab_project_id: int, mr_iid: int, check_id: int,
                project_path: str, sha: str, status: str) -> MergeRequestCheck:
    """The merge request's row for this check, created on first sight."""
    find = select(MergeRequestCheck).where(
        MergeRequestCheck.gitlab_project_id == gitlab_project_id,
        MergeRequestCheck.mr_iid == mr_iid, MergeRequestCheck.check_id == check_id)
    row = session.scalar(find)
    if row is None:
        try:
            with session.begin_nested():
                row = MergeRequestCheck(
                    gitlab_project_id=gitlab_project_id, mr_iid=mr_iid, check_id=check_id,
                    project_path=project_path, sha=sha, status=status, reasons=[])
                session.add(row)
        except IntegrityError:  # the same MR delivered twice at once
            row = session.scalars(find).one()
    return row


def pending(session: Session, limit: int) -> list[MergeRequestCheck]:
    """Checks still pending, least recently updated first."""
    return list(session.scalars(select(MergeRequestCheck)
                                .where(MergeRequestCheck.status == "pending")
                                .order_by(MergeRequestCheck.updated_at).limit(limit)).all())


def recent(session: Session, *, project: str | None = None, mr_iid: int | None = None,
           sha: str | None = None, limit: int = 100) -> list[MergeRequestCheck]:
    """The most recently updated checks, filtered."""
    stmt = select(MergeRequestCheck).order_by(MergeRequestCheck.updated_at.desc()).limit(limit)
    if project is not None:
        stmt = stmt.where(MergeRequestCheck.project_path == project)
    if mr_iid is not None:
        stmt = stmt.where(MergeRequestCheck.mr_iid == mr_iid)
    if sha is not None:
        stmt = stmt.where(MergeRequestCheck.sha == sha)
    return list(session.scalars(stmt))
