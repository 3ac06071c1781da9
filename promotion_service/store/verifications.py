"""Smoke-check results of images in environments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Verification


def add(session: Session, *, release_id: int, environment_id: int, passed: bool,
        details: dict[str, Any], job_url: str | None, actor: str) -> Verification:
    """A new verification (flushed, so it has its id and time)."""
    verification = Verification(release_id=release_id, environment_id=environment_id,
                                passed=passed, details=details, job_url=job_url, actor=actor)
    session.add(verification)
    session.flush()
    return verification


def latest(session: Session, release_id: int, environment_id: int) -> Verification | None:
    """The release's latest verification in the environment."""
    return session.scalar(select(Verification).where(
        Verification.release_id == release_id, Verification.environment_id == environment_id)
        .order_by(Verification.id.desc()).limit(1))


def latest_passed_release(session: Session, environment_id: int) -> int | None:
    """The release whose verification passed last in the environment."""
    return session.scalar(select(Verification.release_id).where(
        Verification.environment_id == environment_id, Verification.passed.is_(True))
        .order_by(Verification.id.desc()).limit(1))
