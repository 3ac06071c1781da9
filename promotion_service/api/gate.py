"""/api/v1/gate: may this release go into this environment now? (deploy jobs, MR gates)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import jsonify, request
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, ValidationError

from .. import db
from ..services import gate
from .auth import current_actor, require_token
from .schemas.promotions import GateOut, GateQuery

blp = Blueprint("gate", __name__, description="The gate deploy jobs ask before deploying")


def query_arguments(schema: Schema) -> Callable[[Any], Any]:
    """blp.arguments(schema, location="query") for the hot path, without webargs per request.

    Same OpenAPI description (taken from blp.arguments) and same 422s: a query string the
    schema refuses is parsed again by webargs, which raises its usual error naming the field.
    Fits schemas without list fields (webargs reads those with getlist).
    """

    def decorate(view: Any) -> Any:
        documented = blp.arguments(schema, location="query")(view)

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                data = schema.load(request.args.to_dict(), unknown=EXCLUDE)
            except ValidationError:
                return documented(*args, **kwargs)  # raises webargs' 422
            return view(*args, data, **kwargs)

        wrapper._apidoc = documented._apidoc  # type: ignore[attr-defined]
        return wrapper

    return decorate


@blp.route("", methods=["GET"])
@require_token
@query_arguments(GateQuery())
@blp.response(200, GateOut)
def ask(query: dict[str, Any]) -> Any:
    """Allowed or not, with every reason and any hold; asking changes nothing (a deploy
    pipeline claims its promotion with POST /claims)."""
    actor = current_actor()
    answer = db.read(lambda conn: gate.ask(conn, actor, **query))
    # already GateOut's exact shape: answer directly rather than dump it again per request
    return jsonify({"allowed": answer.decision.allowed,
                    "reasons": [r.to_dict() for r in answer.decision.reasons],
                    "release_id": answer.row.release_id, "image": answer.row.image_ref,
                    "environment": answer.row.environment,
                    "hold": answer.hold})
