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
    deployments,
    errors,
    gate,
    health,
    hooks,
    images,
    merge_request_checks,
    pages,
    projects,
    promotions,
    scans,
    stops,
    verifications,
)

PREFIX = "/api/v1"


def init_app(app: Flask) -> Api:
    """Set up OpenAPI, register every blueprint and the error handlers."""
    app.config.setdefault("API_TITLE", "docker-cd promotion service")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("OPENAPI_SWAGGER_UI_PATH", "docs")
    app.config.setdefault("OPENAPI_SWAGGER_UI_URL", "https://cdn.jsdelivr.net/npm/swagger-ui-dist/")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })
    api = Api(app)
    for module in (images, scans, deployments, verifications, approvals, promotions, gate,
                   projects, stops, audit):
        api.register_blueprint(module.blp, url_prefix=f"{PREFIX}/{module.blp.name}")
    app.register_blueprint(health.bp)
    api.register_blueprint(merge_request_checks.blp, url_prefix=f"{PREFIX}/merge-request-checks")
    app.register_blueprint(hooks.hooks)
    app.register_blueprint(pages.pages)
    errors.init_app(app)
    return api
