"""Helpers shared by the blueprints: resolving references, paging SQL selects."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import current_app, request
from flask_smorest import Blueprint, Page
from marshmallow import EXCLUDE, Schema, ValidationError
from sqlalchemy import Select, func, select

from ..db import get_session
from ..models import Environment, Image
from ..policy_file import PolicySet
from ..store import images, projects


def policies() -> PolicySet:
    """The policy set loaded at start-up."""
    return current_app.extensions["promotion_policies"]


def image_and_env(data: dict[str, Any]) -> tuple[Image, Environment]:
    """The image and environment a request names (404s say which is unknown)."""
    session = get_session()
    image = images.get(session, data["repository"], data["digest"])
    return image, projects.get_environment(session, image.project_id, data["environment"])


class SelectPage(Page):
    """Paginate an SQLAlchemy select in the database, not in Python."""

    @property
    def items(self) -> list[Any]:
        stmt: Select[Any] = self.collection
        params = self.page_params
        return list(get_session().scalars(stmt.offset(params.first_item).limit(params.page_size)))

    @property
    def item_count(self) -> int:
        stmt: Select[Any] = self.collection
        return get_session().scalar(select(func.count()).select_from(
            stmt.order_by(None).subquery())) or 0


class Extended:
    """An ORM object seen with extra attributes, for response schemas that add fields."""

    def __init__(self, obj: Any, **extra: Any) -> None:
        self._obj, self._extra = obj, extra

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__["_extra"]
        return extra[name] if name in extra else getattr(self.__dict__["_obj"], name)


def query_arguments(blp: Blueprint, schema: Schema) -> Callable[[Any], Any]:
    """blp.arguments(schema, location="query") for hot GET paths, without webargs per request.

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
