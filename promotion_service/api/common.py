"""Helpers shared by the blueprints: resolving references, paging SQL selects."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Page
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
