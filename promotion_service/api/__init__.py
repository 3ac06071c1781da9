"""The HTTP API: one flask-smorest Blueprint per resource under /api/v1, one error shape.

Views parse the request, call a use case in services/ (or gitlab/), and answer; they never
commit: the use case owns its transaction.
"""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from . import (
    approvals,
    audit,
    claims,
    deployments,
    docs,
    errors,
    gate,
    health,
    hooks,
    id_tokens,
    images,
    limits,
    merge_request_checks,
    metrics,
    pages,
    projects,
    promotions,
    releases,
    responses,
    scans,
    stops,
    verifications,
    web,
)
from .schemas.base import ErrorOut

PREFIX = "/api/v1"


class ServiceApi(Api):
    """flask-smorest's Api, documenting the service's error shape and pagination headers."""

    ERROR_SCHEMA = ErrorOut

    def _register_pagination_header(self) -> None:
        # the header carries JSON text: declared as a string, its fields described
        self.spec.components.header("PAGINATION", {
            "description": "offset pagination: JSON text: {total, total_pages, first_page, "
                           "last_page, page, previous_page, next_page} (the page fields only "
                           "when there are items; past 10,000 items, as GitLab's API, no "
                           "total, total_pages or last_page)",
            "schema": {"type": "string"}}, lazy=True)
        self.spec.components.header("LINK", {
            "description": "pagination=keyset: <URL of the next page>; rel=\"next\" (absent "
                           "on the last page)",
            "schema": {"type": "string"}}, lazy=True)


def init_app(app: Flask) -> Api:
    """Set up OpenAPI, register every blueprint and the error handlers."""
    app.config.setdefault("API_TITLE", "docker-cd promotion service")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })
    limits.init_app(app)
    api = ServiceApi(app)
    for module in (images, releases, scans, deployments, verifications, approvals, promotions, gate,
                   claims, projects, stops, audit, metrics):
        api.register_blueprint(module.blp, url_prefix=f"{PREFIX}/{module.blp.name}")
    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp, url_prefix=PREFIX)
    api.register_blueprint(merge_request_checks.blp, url_prefix=f"{PREFIX}/merge-request-checks")
    app.register_blueprint(hooks.hooks)
    app.register_blueprint(pages.pages)
    web.init_app(app)
    errors.init_app(app)
    id_tokens.init_app(app)
    responses.init_app(app)
    return api
