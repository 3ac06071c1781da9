"""One JSON shape for every HTTP error, with the request id that finds it in the log."""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus
from typing import Any

from flask import Flask, g, request
from sqlalchemy.exc import DBAPIError, IntegrityError
from werkzeug.exceptions import HTTPException

from ..db import DATABASE_BUSY
from ..errors import ServiceError

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5  # a locked or unreachable database: how soon to ask again


def init_app(app: Flask) -> None:
    """Give every request an id and answer every error in one shape."""
    app.before_request(_request_id)
    app.after_request(_echo_request_id)
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(IntegrityError, _integrity_error)
    for busy in DATABASE_BUSY:
        app.register_error_handler(busy, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)


def error_body(code: int, message: str, **extra: Any) -> dict[str, Any]:
    """The one JSON shape of every error."""
    body = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    if not g.get("request_id"):  # refused before the request got its id (a URI too long)
        _request_id()
    body["request_id"] = g.request_id
    return body


def _request_id() -> None:
    supplied = request.headers.get("X-Request-ID", "")
    g.request_id = supplied[:64] if supplied.isprintable() and supplied else uuid.uuid4().hex


def _echo_request_id(response: Any) -> Any:
    if g.get("request_id"):
        response.headers["X-Request-ID"] = g.request_id
    return response


def _service_error(exc: ServiceError) -> tuple[dict[str, Any], int]:
    return error_body(exc.status, exc.message, errors=exc.errors, reasons=exc.reasons), exc.status


def _http_error(exc: HTTPException) -> tuple[dict[str, Any], int]:
    code = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = data.get("messages")
    message = data.get("message") or exc.description or ""
    if errors and code == 422:
        message = "invalid input: " + _summary(errors)
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}  # Allow
    headers.update(data.get("headers") or {})
    response = error_body(code, message, errors=errors)
    return (response, code, headers) if headers else (response, code)  # type: ignore[return-value]


def _integrity_error(exc: IntegrityError) -> tuple[dict[str, Any], int]:
    log.warning("integrity error (request %s): %s", g.get("request_id"), exc.orig)
    return error_body(409, "the change clashed with another one made at the same time; "
                           "retry the request"), 409


def _database_unavailable(exc: Exception) -> Any:
    """A locked, unreachable or overloaded database: try again soon; nothing was changed."""
    log.warning("database unavailable (request %s): %s", g.get("request_id"),
                getattr(exc, "orig", None) or exc)
    body = error_body(503, "the database is unavailable (locked, unreachable or busy); nothing "
                           f"was changed: retry in {RETRY_AFTER_SECONDS} seconds")
    return body, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def _unexpected(exc: Exception) -> Any:
    if isinstance(exc, HTTPException):  # pragma: no cover - routed above
        return _http_error(exc)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return _database_unavailable(exc)  # the connection broke under the request
    log.exception("unexpected error (request %s)", g.get("request_id"))
    return error_body(500, "internal error; the service log has details under this request id"), 500


def _summary(errors: Any) -> str:
    parts: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list) and all(isinstance(x, str) for x in node):
            parts.append(f"{path or 'body'}: {' '.join(node)}")
        else:
            parts.append(f"{path or 'body'}: {node}")

    for location in errors.values() if isinstance(errors, dict) else [errors]:
        walk(location, "")
    return "; ".join(parts)
