"""Webhook deliveries already handled, so a replay or redelivery changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db.gitlab_models import WebhookDelivery


def seen_before(session: Session, keys: Sequence[str], event: str,
                project_id: int | None) -> bool:
    """Record a delivery's keys; True if any was recorded already (a replay or redelivery)."""
    if session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.key.in_(keys))):
        return True
    try:
        with session.begin_nested():
            session.add_all(WebhookDelivery(key=key, event=event[:64],
                                            gitlab_project_id=project_id) for key in keys)
    except IntegrityError:  # the same delivery, concurrently
        return True
    return False


def note_outcome(session: Session, keys: Sequence[str], outcome: str) -> None:
    """Keep what a delivery did, for support."""
    for row in session.scalars(select(WebhookDelivery).where(WebhookDelivery.key.in_(keys))):
        row.outcome = outcome[:2000]


def any_before(session: Session, cutoff: datetime) -> bool:
    """Whether any delivery key was received before the cutoff."""
    return session.scalar(select(WebhookDelivery.id)
                          .where(WebhookDelivery.received_at < cutoff).limit(1)) is not None


def forget_before(session: Session, cutoff: datetime) -> int:
    """Forget delivery keys received before the cutoff; how many."""
    return session.execute(delete(WebhookDelivery).where(WebhookDelivery.received_at < cutoff)
                           ).rowcount or 0
