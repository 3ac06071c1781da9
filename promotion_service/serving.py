"""The HTTP server: waitress, which reads each whole request before a thread runs it.

Slow or idle clients then cost a socket in waitress's event loop, never an application thread:
benchmarks/slow_clients.py measures the gate under 1,000 of them against gunicorn's workers.
"""

from __future__ import annotations

import logging
import resource
import signal
import threading
import time
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from .db import engine_of, session_for
from .db.schema import service_can_bypass_audit
from .services import audit

log = logging.getLogger(__name__)
# waitress answers by itself (plain text, before the app) only for requests it cannot take:
# header blocks over this size (431), bodies over this many times the app's own limit (413)
MAX_HEADER_BYTES = 256 * 1024
BODY_LIMIT_FACTOR = 16


def serve(app: Flask, bind: str, *, threads: int, max_connections: int,
          idle_timeout: float) -> None:
    """Serve `app` on HOST:PORT until SIGTERM or SIGINT."""
    from waitress import create_server

    _allow_open_files(max_connections + threads + 64)
    if app.config.get("SECRET_KEY_MADE_AT_START"):
        log.warning("PROMOTION_SECRET_KEY is not set: web sessions are signed with a key made "
                    "at start, so they end when the process restarts and hold on one process "
                    "only")
    _warn_if_the_role_owns_the_audit_log(app)
    server = create_server(
        app, listen=bind, threads=threads, connection_limit=max_connections,
        channel_timeout=idle_timeout, asyncore_use_poll=True,  # select() stops at 1,024 sockets
        max_request_header_size=MAX_HEADER_BYTES,
        max_request_body_size=BODY_LIMIT_FACTOR * app.config["MAX_CONTENT_LENGTH"],
        ident="promotion-service", expose_tracebacks=False)

    def stop(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    anchor = audit.anchor_from_config(app.config)
    if anchor is not None:
        threading.Thread(target=_checkpoints, args=(app, anchor), name="audit-checkpoints",
                         daemon=True).start()
    log.info("serving on http://%s (%d threads, at most %d connections)", bind, threads,
             max_connections)
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.close()
        server.task_dispatcher.shutdown(timeout=10)  # requests in progress finish


def _checkpoints(app: Flask, anchor: audit.Anchor) -> None:
    """Append a checkpoint now, then every PROMOTION_AUDIT_CHECKPOINT_SECONDS the log grew."""
    every = float(app.config.get("AUDIT_CHECKPOINT_SECONDS") or 60)
    last = None
    while True:
        try:
            with session_for(app, write=False) as session:
                last = audit.write_checkpoint(session, anchor, last) or last
        except Exception:
            log.exception("could not write an audit checkpoint to %s", anchor.path)
        time.sleep(every)


def _warn_if_the_role_owns_the_audit_log(app: Flask) -> None:
    try:
        bypass = service_can_bypass_audit(engine_of(app))
    except SQLAlchemyError as exc:  # the database is down: serve anyway, /ready tells
        log.warning("could not check the service's database role: %s", exc.__class__.__name__)
        return
    if bypass:
        log.warning("the service's database role owns the audit log or is a superuser: it "
                    "could disable the triggers that keep the log append-only; run it as a "
                    "role that owns nothing (PROMOTION_DATABASE_OWNER_URL for 'db upgrade')")


def _allow_open_files(needed: int) -> None:
    """Raise the soft open-files limit toward what max_connections needs (up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning("open files limit %d is below the %d that PROMOTION_MAX_CONNECTIONS "
                        "needs; raise it (ulimit -n)", target, needed)
