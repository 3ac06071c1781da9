"""What every response carries: security headers, and one access-log line without secrets."""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Flask, g, request

access_log = logging.getLogger("promotion_service.access")
# pages (Swagger UI, link pages, the web pages): scripts, styles and form posts to the service
# itself only, never framed
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
# query parameters whose values never reach the log
SECRET_NAME = re.compile(r"token|secret|passw|key|auth|sig|cred", re.IGNORECASE)


def init_app(app: Flask) -> None:
    """Time each request; add the headers and log the line when it is answered."""
    app.before_request(_start_clock)
    app.after_request(_finish)


def _start_clock() -> None:
    g.started = time.perf_counter()


def _finish(response: Any) -> Any:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cache-Control", "no-store")  # pages show a signed-in person's view
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    elif response.is_json:
        headers["Cache-Control"] = "no-store"  # answers hold current state, and may be private
    started = g.get("started")
    access_log.info('%s "%s %s" %s %s %.1fms %s', request.remote_addr, request.method,
                    loggable_target(), response.status_code,
                    response.content_length if response.content_length is not None else "-",
                    (time.perf_counter() - started) * 1000 if started else 0.0,
                    g.get("request_id", "-"))
    return response


def loggable_target() -> str:
    """The path and query string, with the values of secret-looking parameters masked."""
    query = request.query_string.decode("latin-1")
    if not SECRET_NAME.search(query):  # the common case, without parsing
        return f"{request.path}?{query}" if query else request.path
    pairs = parse_qsl(query, keep_blank_values=True)
    masked = [(k, "***" if SECRET_NAME.search(k) else v) for k, v in pairs]
    return f"{request.path}?{urlencode(masked)}"
