"""The dispatcher with its periodic checks: in `promotion-service worker` processes, or in a
thread of each service process (PROMOTION_DISPATCHER_THREAD=1).

Run as many as you like: each outbox row is claimed by one of them. SIGTERM/SIGINT finish
the current row and exit.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from flask import Flask
from sqlalchemy.orm import Session

from ..db import DATABASE_BUSY, session_for
from ..gitlab import deployment_approvals, events, merge_request_gate
from ..services import audit
from ..services.promotion import reevaluate_waiting
from ..services.reports import close_abandoned
from .dispatcher import from_app

log = logging.getLogger(__name__)


def periodic_tasks(app: Flask, verifier: AuditVerifier | None = None) -> Callable[[], None]:
    """What the dispatcher loop also does every few seconds (each in its own transaction);
    with a `verifier`, also start the full audit verify when it is due.

    Each task looks without the writers' lock first and takes it only to write, so a burst
    being recorded does not hold the checks up. A task kept from writing (another writer
    held the lock past PROMOTION_DB_TIMEOUT) changed nothing and runs again on the next
    tick: a one-line warning. Anything else is a bug: an error with its traceback.
    """
    every = periodic_seconds(app)
    tasks: list[tuple[str, Callable[[Session], object]]] = [
        ("promotions waiting for time", lambda s: reevaluate_waiting(s)),
        ("pending merge-request checks",
         lambda s: merge_request_gate.recheck_pending(s, app.config)),
        ("old webhook delivery keys",
         lambda s: events.prune_deliveries(
             s, float(app.config.get("WEBHOOK_DEDUPE_DAYS") or 7))),
        ("GitLab deployments waiting for approval",
         lambda s: deployment_approvals.sync_blocked_deployments(s, app.config)),
        ("deployments left open by a killed job",
         lambda s: close_abandoned(s, deployment_timeout(app))),
    ]
    if verifier is not None:  # it opens sessions of its own (the one given stays unused)
        tasks.append(("full audit verify", lambda _s: verifier.start_if_due()))

    def tick() -> None:
        for name, task in tasks:
            try:
                with session_for(app, write=False) as session:
                    task(session)
            except DATABASE_BUSY as e:
                log.warning("periodic task put off: %s: database busy (%s); again on the "
                            "next tick, in %gs", name, reason(e), every)
            except Exception as e:
                log.error("periodic task failed: %s: %s", name, reason(e), exc_info=e)

    return tick


class AuditVerifier:
    """The full walk of the audit chain, every PROMOTION_AUDIT_VERIFY_SECONDS (default 3600;
    0: never), its verdict stored for the audit page.

    Due when the newest stored verdict (any worker's, or `audit verify`'s) began that long
    ago, or there is none: each tick looks (one row by its key). It runs in a thread of its
    own, so the dispatcher goes on sending while it walks (half a minute at 2,000,000
    entries). The walk is a read that holds no lock (SQLite WAL, PostgreSQL READ COMMITTED:
    writers go on); the verdict is stored after it, in a short write transaction of its own.
    """

    def __init__(self, app: Flask, *, wait: bool = False) -> None:
        self.app, self.every, self.wait = app, audit_verify_seconds(app), wait
        self.thread: threading.Thread | None = None

    def due(self) -> bool:
        """Whether a full verify should start now (none running in this process)."""
        if self.every <= 0 or (self.thread is not None and self.thread.is_alive()):
            return False
        with session_for(self.app, write=False) as session:
            age = audit.seconds_since_full_verify(session)
        return age is None or age >= self.every

    def start_if_due(self) -> bool:
        """Start a full verify when due: in a thread (made with `wait`: in this one)."""
        if not self.due():
            return False
        if self.wait:
            self.run()
        else:
            self.thread = threading.Thread(target=self.run, name="audit-verify", daemon=True)
            self.thread.start()
        return True

    def run(self) -> None:
        """Walk the whole chain, then store the verdict; log it (an error if it is broken)."""
        try:
            began = time.monotonic()
            anchor = audit.anchor_from_config(self.app.config)
            with session_for(self.app, write=False) as session:
                verdict = audit.verify(session, anchor)
            with session_for(self.app, write=False) as session:
                audit.record(session, verdict)
        except Exception as e:
            log.error("full audit verify failed: %s", reason(e), exc_info=e)
            return
        took = time.monotonic() - began
        if verdict.problem is None:
            log.info("audit log verified in full: %d entries, %d checkpoints, intact (%.1f s)",
                     verdict.count, verdict.checkpoints, took)
        else:
            where = ("" if verdict.problem.entry_id is None
                     else f"entry {verdict.problem.entry_id}: ")
            log.error("audit log verified in full: NOT intact: %s%s (%d entries walked, "
                      "%.1f s)", where, verdict.problem.problem, verdict.count, took)


def reason(error: BaseException) -> str:
    """The exception's type and message on one line; the driver's own for a database error."""
    cause = getattr(error, "orig", None) or error
    message = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {message[0]}" if message else type(cause).__name__


def deployment_timeout(app: Flask) -> float:
    """How long a deployment may stay `started` before the service closes it as failed
    (PROMOTION_DEPLOYMENT_TIMEOUT_SECONDS, default 3600: longer than any deploy job runs)."""
    return float(app.config.get("DEPLOYMENT_TIMEOUT_SECONDS") or 3600)


def audit_verify_seconds(app: Flask) -> float:
    """How often a full verify of the audit chain runs (PROMOTION_AUDIT_VERIFY_SECONDS,
    default 3600; 0 turns it off)."""
    return float(app.config.get("AUDIT_VERIFY_SECONDS", 3600.0))


def periodic_seconds(app: Flask) -> float:
    """How often the periodic checks run (PROMOTION_WORKER_PERIODIC_SECONDS, default 10)."""
    return float(app.config.get("WORKER_PERIODIC_SECONDS") or 10)


def run(app: Flask, *, once: bool = False, stop: threading.Event | None = None) -> int:
    """Dispatch the outbox until stopped (or one batch with ``once``); return an exit status."""
    dispatcher = from_app(app)
    if once:
        periodic_tasks(app, AuditVerifier(app, wait=True))()
        while dispatcher.run_once():
            pass
        return 0
    tick = periodic_tasks(app, AuditVerifier(app))
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    log.info("worker %s dispatching the outbox to %s", dispatcher.name, dispatcher.gitlab.url)
    dispatcher.run(stop, periodic=tick, periodic_seconds=periodic_seconds(app))
    return 0


def start_thread(app: Flask) -> tuple[threading.Thread, threading.Event]:
    """Run a dispatcher in a daemon thread of this process; set the event to stop it."""
    stop = threading.Event()
    dispatcher = from_app(app)
    thread = threading.Thread(
        target=dispatcher.run, args=(stop,),
        kwargs={"periodic": periodic_tasks(app, AuditVerifier(app)),
                "periodic_seconds": periodic_seconds(app)},
        name="outbox-dispatcher", daemon=True,
    )
    thread.start()
    log.info("dispatcher thread %s started", dispatcher.name)
    return thread, stop


_thread_lock = threading.Lock()


def start_thread_per_process(app: Flask) -> None:
    """Start a dispatcher thread with the first request each process serves.

    The first request (health probes count), so that it runs in every forked gunicorn
    worker and never in the master.
    """
    state = {"pid": None}

    @app.before_request
    def _ensure_dispatcher_thread() -> None:
        if state["pid"] == os.getpid():
            return
        with _thread_lock:
            if state["pid"] == os.getpid():
                return
            state["pid"] = os.getpid()
            start_thread(app)
