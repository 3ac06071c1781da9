"""/api/v1/docs: Swagger UI, served by the service itself (no CDN; works offline).

The UI's files come from the flask-swagger-ui package (swagger-ui-dist, Apache-2.0, version
pinned in pyproject.toml); the page loads only scripts and styles from this service, so it
runs under a Content-Security-Policy without 'unsafe-inline'.
"""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, Response, send_from_directory
from werkzeug.exceptions import NotFound

bp = Blueprint("docs", __name__)
DIST = str(files("flask_swagger_ui") / "dist")
ASSETS = ("swagger-ui.css", "index.css", "swagger-ui-bundle.js", "favicon-32x32.png", "LICENSE",
          "VERSION")
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>docker-cd promotion service API</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
  <link rel="stylesheet" href="docs/assets/index.css">
  <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/start.js"></script>
</body>
</html>
"""
START = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true});
});
"""


@bp.get("/docs")
def page() -> Response:
    """The Swagger UI page (paths relative to /api/v1/, so a path prefix in front works)."""
    return Response(PAGE, mimetype="text/html")


@bp.get("/docs/start.js")
def start() -> Response:
    """Starts Swagger UI on the service's OpenAPI document."""
    return Response(START, mimetype="text/javascript")


@bp.get("/docs/assets/<name>")
def asset(name: str) -> Response:
    """Swagger UI's own files (and its licence and version)."""
    if name not in ASSETS:
        raise NotFound(f"no such Swagger UI file: {name}")
    response = send_from_directory(DIST, name, max_age=86400)
    if name in ("LICENSE", "VERSION"):
        response.mimetype = "text/plain"
    return response
