"""The HTTP server: waitress, which reads each whole request before a thread runs it.

Slow or idle clients then cost a socket in waitress's event loop, never an application thread:
benchmarks/slow_clients.py measures the gate under 1,000 of them against gunicorn's workers.
"""

from __future__ import annotations

import logging
import resource
import signal
from typing import Any

from flask import Flask

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
    server = create_server(
        app, listen=bind, threads=threads, connection_limit=max_connections,
        channel_timeout=idle_timeout, asyncore_use_poll=True,  # select() stops at 1,024 sockets
        max_request_header_size=MAX_HEADER_BYTES,
        max_request_body_size=BODY_LIMIT_FACTOR * app.config["MAX_CONTENT_LENGTH"],
        ident="promotion-service", expose_tracebacks=False)

    def stop(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    log.info("serving on http://%s (%d threads, at most %d connections)", bind, threads,
             max_connections)
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.close()
        server.task_dispatcher.shutdown(timeout=10)  # requests in progress finish


def _allow_open_files(needed: int) -> None:
    """Raise the soft open-files limit toward what max_connections needs (up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning("open files limit %d is below the %d that PROMOTION_MAX_CONNECTIONS "
                        "needs; raise it (ulimit -n)", target, needed)
