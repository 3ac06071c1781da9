"""/health (alive), /ready (database reachable and migrated), /metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..config import is_on
from ..db import get_session
from ..domain.actor import Actor
from ..services import dora, health
from .auth import current_actor

bp = Blueprint("health", __name__)


@bp.get("/health")
def alive() -> Any:
    """The process answers."""
    return {"status": "ok"}


@bp.get("/ready")
def ready() -> Any:
    """The database answers and the schema is migrated."""
    readiness = health.readiness(get_session())
    if readiness.ready:
        return {"status": "ready", "schema": readiness.schema}
    body: dict[str, Any] = {"status": "unavailable"}
    if readiness.reachable:
        body["schema"] = readiness.schema
    return body | {"message": readiness.problem}, 503


@bp.get("/metrics")
def metrics() -> Response:
    """Gauges read from the database, so every process reports the same figures.

    With PROMOTION_METRICS_AUTH=1, only for a valid bearer token (any role), and the DORA
    gauges only for the projects the token may read.
    """
    reader = Actor.system("metrics")
    if is_on(current_app.config.get("METRICS_AUTH")):
        reader = current_actor()
    registry = CollectorRegistry()
    registry.register(_DatabaseCollector(reader))
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")


class _DatabaseCollector(Collector):
    def __init__(self, reader: Actor) -> None:
        self.reader = reader

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = health.gauges(get_session())
        yield GaugeMetricFamily("promotion_images", "Registered images", value=gauges.images)
        promotions = GaugeMetricFamily("promotion_promotions", "Promotions by state",
                                       labels=["state"])
        for state, count in gauges.promotions_by_state:
            promotions.add_metric([state], count)
        yield promotions
        outbox = GaugeMetricFamily("promotion_outbox", "Outbox rows by state", labels=["state"])
        for state, count in gauges.outbox_by_state:
            outbox.add_metric([state], count)
        yield outbox
        yield from _dora_gauges(self.reader)


DORA_DAYS = 30
DORA_GAUGES = (  # name, help, the Keys attribute
    ("deployments_per_day", "Releases that went live per day", "deployments_per_day"),
    ("lead_time_seconds", "Median commit time to verified", "lead_time_seconds"),
    ("change_failure_rate", "Share of releases followed by a rollback, a failed verification "
                            "or a revocation", "change_failure_rate"),
    ("time_to_restore_seconds", "Median failure or rollback to the next verified release",
     "time_to_restore_seconds"),
)


def _dora_gauges(reader: Actor) -> Iterator[GaugeMetricFamily]:
    """DORA's four keys over the last 30 days, per project and environment, of the projects
    the reader may see (a key with nothing to measure is left out)."""
    report = dora.report(get_session(), reader, days=DORA_DAYS)
    for name, about, attribute in DORA_GAUGES:
        family = GaugeMetricFamily(f"promotion_dora_{name}", f"{about} (last {DORA_DAYS} days)",
                                   labels=["project", "environment"])
        for item in report:
            value = getattr(item.keys, attribute)
            if value is not None:
                family.add_metric([item.project, item.environment], value)
        yield family
