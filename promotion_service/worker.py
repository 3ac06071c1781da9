"""`promotion-service worker`: the dispatcher and the periodic checks, in their own process.

Run as many as you like (and/or the in-process thread, PROMOTION_DISPATCHER_THREAD=1): each
outbox row is claimed by one of them. SIGTERM/SIGINT finish the current row and exit.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)


def periodic_tasks(app: Flask) -> Callable[[], None]:
    """What the dispatcher loop also does every few seconds (each in its own transaction)."""
    from . import deployment_approvals, gitlab_sync, merge_request_gate
    from .db import session_for
    from .store.promotions import reevaluate_waiting

    def tick() -> None:
        for name, task in (
            ("promotions waiting for time", lambda s: reevaluate_waiting(s)),
            ("pending merge-request checks",
             lambda s: merge_request_gate.recheck_pending(s, app.config)),
            ("old webhook delivery keys",
             lambda s: gitlab_sync.prune_deliveries(
                 s, float(app.config.get("WEBHOOK_DEDUPE_DAYS") or 7))),
            ("GitLab deployments waiting for approval",
             lambda s: deployment_approvals.sync_blocked_deployments(s, app.config)),
        ):
            try:
                with session_for(app) as session:
                    task(session)
            except Exception:
                log.exception("periodic task failed: %s", name)

    return tick


def periodic_seconds(app: Flask) -> float:
    """How often the periodic checks run (PROMOTION_WORKER_PERIODIC_SECONDS, default 10)."""
    return float(app.config.get("WORKER_PERIODIC_SECONDS") or 10)


def run(app: Flask | None = None, *, once: bool = False,
        stop: threading.Event | None = None) -> int:
    """Dispatch the outbox until stopped (or one batch with ``once``); return an exit status."""
    from . import create_app
    from .dispatcher import from_app

    app = app or create_app()
    dispatcher = from_app(app)
    tick = periodic_tasks(app)
    if once:
        tick()
        while dispatcher.run_once():
            pass
        return 0
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    log.info("worker %s dispatching the outbox to %s", dispatcher.name, dispatcher.gitlab.url)
    dispatcher.run(stop, periodic=tick, periodic_seconds=periodic_seconds(app))
    return 0
