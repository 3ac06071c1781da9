"""/health (alive), /ready (database reachable and migrated), /metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from ..db import get_session
from ..models import Image, Outbox, Promotion
from ..schema import schema_head

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Any:
    """The process answers."""
    return {"status": "ok"}


@bp.get("/ready")
def ready() -> Any:
    """The database answers and the schema is migrated."""
    try:
        version = get_session().scalar(text("SELECT version_num FROM alembic_version"))
    except SQLAlchemyError as exc:
        get_session().rollback()
        return {"status": "unavailable",
                "message": f"database not ready ({type(exc).__name__}); "
                           "run 'promotion-service db upgrade'"}, 503
    head = schema_head()
    if version != head:
        return {"status": "unavailable", "schema": version,
                "message": f"database schema is at {version}, the code needs {head}; "
                           "run 'promotion-service db upgrade'"}, 503
    return {"status": "ready", "schema": version}


@bp.get("/metrics")
def metrics() -> Response:
    """Gauges read from the database, so every worker reports the same figures."""
    registry = CollectorRegistry()
    registry.register(_DatabaseCollector())
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")


class _DatabaseCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        session = get_session()
        yield GaugeMetricFamily("promotion_images", "Registered images",
                                value=session.scalar(select(func.count(Image.id))) or 0)
        promos = GaugeMetricFamily("promotion_promotions", "Promotions by state",
                                   labels=["state"])
        for state, count in session.execute(select(Promotion.state, func.count())
                                            .group_by(Promotion.state)):
            promos.add_metric([state], count)
        yield promos
        outbox = GaugeMetricFamily("promotion_outbox", "Outbox rows by state", labels=["state"])
        for state, count in session.execute(select(Outbox.state, func.count())
                                            .group_by(Outbox.state)):
            outbox.add_metric([state], count)
        yield outbox
