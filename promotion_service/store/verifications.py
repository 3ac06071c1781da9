"""Smoke-check results of images in environments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Verification


def add(session: Session, *, image_id: int, environment_id: int, passed: bool,
        details: dict[str, Any], job_url: str | None, actor: str) -> Verification:
    """A new verification (flushed, so it has its id and time)."""
    verification = Verification(image_id=image_id, environment_id=environment_id,
                                passed=passed, details=details, job_url=job_url, actor=actor)
    session.add(verification)
    session.flush()
    return verification


def latest(session: Session, image_id: int, environment_id: int) -> Verification | None:
    """The image's latest verification in the environment."""
    return session.scalar(select(Verification).where(
        Verification.image_id == image_id, Verification.environment_id == environment_id)
        .order_by(Verification.id.desc()).limit(1))


def latest_passed_image(session: Session, environment_id: int) -> int | None:
    """The image whose verification passed last in the environment."""
    return session.scalar(select(Verification.image_id).where(
        Verification.environment_id == environment_id, Verification.passed.is_(True))
        .order_by(Verification.id.desc()).limit(1))
