"""Errors the service raises; the API turns each into one JSON shape.

ServiceError (status 500 unless a subclass says otherwise)
 +-- Invalid       422  a field is wrong (errors keyed by location and field)
 +-- Unauthorized  401  no or bad bearer token
 +-- Forbidden     403  the token's role or project scope does not allow it
 +-- NotFound      404
 +-- Conflict      409  an illegal state move or a clash
      +-- Refused  409  the gate said no (carries every reason)
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of the service's errors: an HTTP status and a message for the caller."""

    status = 500

    def __init__(self, message: str, *, errors: dict[str, Any] | None = None,
                 reasons: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.reasons = reasons


class Invalid(ServiceError):
    """A request field is wrong."""

    status = 422

    @classmethod
    def field(cls, field: str, message: str, location: str = "json") -> Invalid:
        """An error on one field, keyed the way marshmallow keys it."""
        return cls(f"{field}: {message}", errors={location: {field: [message]}})


class Unauthorized(ServiceError):
    """No valid bearer token."""

    status = 401


class Forbidden(ServiceError):
    """The token may not do this."""

    status = 403


class NotFound(ServiceError):
    """No such thing."""

    status = 404


class Conflict(ServiceError):
    """The request clashes with the current state."""

    status = 409


class Refused(Conflict):
    """The gate refused; reasons say what is missing and what would satisfy it."""
