"""Scan summaries of images (the gate reads the latest)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Scan


def add(session: Session, *, image_id: int, scanner: str, counts: dict[str, int],
        findings: list[dict[str, Any]], report_url: str | None, actor: str) -> Scan:
    """A new scan summary (flushed, so it has its id)."""
    scan = Scan(image_id=image_id, scanner=scanner, counts=counts, findings=findings,
                report_url=report_url, actor=actor)
    session.add(scan)
    session.flush()
    return scan


def latest(session: Session, image_id: int) -> Scan | None:
    """The scan the gate reads: the image's most recent."""
    return session.scalar(select(Scan).where(Scan.image_id == image_id)
                          .order_by(Scan.id.desc()).limit(1))
