"""docker-cd promotion service: the system of record for what may go where."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

__all__ = ["create_app"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: config from PROMOTION_* variables unless test_config is given.

    Like Flask's tutorial app, the parts are imported here, so importing one module of the
    package (the domain, the CLI's --help) does not load the whole service.
    """
    from werkzeug.middleware.proxy_fix import ProxyFix

    from . import api, db, outbox
    from .config import default_database_url, load_config
    from .policy_file import load_policies

    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(load_config(instance_path=app.instance_path)
                            if test_config is None else load_config({}, app.instance_path))
    if test_config is not None:
        app.config.from_mapping(test_config)
    if app.config["DATABASE_URL"] == default_database_url(app.instance_path):
        os.makedirs(app.instance_path, exist_ok=True)
    logging.getLogger("promotion_service").setLevel(app.config.get("LOG_LEVEL", "INFO"))
    if app.config.get("PROXY_HOPS"):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_HOPS"],
                                x_proto=app.config["PROXY_HOPS"])  # type: ignore[method-assign]
    app.extensions["promotion_policies"] = load_policies(app.config.get("POLICY_FILE"))
    db.init_app(app)
    api.init_app(app)
    outbox.init_app(app)
    return app
