"""Pages of a listing, cut by the database, in one of two ways a client picks.

Offset (the default): `page` and `page_size`, and an X-Pagination header with the totals. The
database skips `(page - 1) * page_size` rows, so a deep page costs O(rows) in a long history.
The total is counted up to COUNT_LIMIT + 1 rows only, as GitLab's API does: past COUNT_LIMIT
the header leaves out total, total_pages and last_page, and next_page comes from the page
itself (one row more than the page is read).

Keyset (`pagination=keyset`, as GitLab's API pages): `page_size` rows past a cursor, the id of
the last row of the previous page, read off an index at the same cost at any depth; no totals,
and a `Link: <url>; rel="next"` header holding the next page's URL while there is one.
Rows added between pages neither repeat nor push rows off the pages still to come.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from copy import deepcopy
from functools import wraps
from typing import Any
from urllib.parse import urlencode

import flask_smorest
from flask import request
from flask_smorest.pagination import PaginationMetadataSchema
from flask_smorest.utils import unpack_tuple_response
from marshmallow import fields, validate

from ..db.listing import Listing
from .schemas.base import ID, Filters

MAX_OFFSET = 2**62  # past any table's end, and inside SQL's OFFSET range
COUNT_LIMIT = 10_000  # GitLab's: a longer list's offset pages go without totals
MAX_PAGE_SIZE = 100


class PageIn(Filters):
    """How to page: by offset (page) or by keyset (cursor)."""

    pagination = fields.String(load_default="offset",
                               validate=validate.OneOf(["offset", "keyset"]), metadata={
        "description": "keyset: page by cursor, following the Link header's rel=\"next\" URL "
                       "(no totals; the same cost at any depth); offset: page by number"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1), metadata={
        "description": "offset pagination: the page number (a deep page costs O(rows); "
                       "pagination=keyset ignores it)"})
    page_size = fields.Integer(load_default=10,
                               validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    cursor = fields.Integer(validate=ID, metadata={
        "description": "keyset pagination: where the page starts (the id of the last item "
                       "of the previous page); take it from the Link header (offset "
                       "pagination ignores it)"})


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose lists page a db.listing.Listing by offset or keyset."""

    def paginate_listing(self) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorate a view that returns a Listing: answer one page of it, with its headers."""

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            @wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                params = self.PAGINATION_ARGUMENTS_PARSER.parse(PageIn(), request,
                                                                location="query")
                listing, status, headers = unpack_tuple_response(func(*args, **kwargs))
                headers = dict(headers or {})
                if params["pagination"] == "keyset":
                    items, cursor = listing.after(params.get("cursor"), params["page_size"])
                    if cursor is not None:
                        headers["Link"] = f'<{_next_url(cursor)}>; rel="next"'
                else:
                    items = self._offset_page(listing, params["page"], params["page_size"],
                                              headers)
                return items, status, headers

            wrapper._apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))  # type: ignore[attr-defined]
            wrapper._apidoc["pagination"] = {  # type: ignore[attr-defined]
                "parameters": {"in": "query", "schema": PageIn},
                "response": {422: "UNPROCESSABLE_ENTITY"}}
            return wrapper

        return decorator

    def _offset_page(self, listing: Listing, page: int, page_size: int,
                     headers: dict[str, Any]) -> list[Any]:
        first = (page - 1) * page_size
        total = listing.count(at_most=COUNT_LIMIT + 1)
        # one row more than the page: is there a next page?
        rows = [] if first > MAX_OFFSET else listing.page(first, page_size + 1)
        items = rows[:page_size]
        if total <= COUNT_LIMIT:
            metadata = self._make_pagination_metadata(page, page_size, total)
        else:
            metadata = _uncounted_metadata(page, bool(items), len(rows) > page_size)
        headers[self.PAGINATION_HEADER_NAME] = json.dumps(metadata)
        return items

    def _document_pagination_metadata(self, spec: Any, resp_doc: dict[str, Any]) -> None:
        super()._document_pagination_metadata(spec, resp_doc)
        resp_doc["headers"]["Link"] = "LINK"


def _uncounted_metadata(page: int, has_items: bool, has_next: bool) -> dict[str, Any]:
    """X-Pagination of a list too long to count: no total, total_pages or last_page; the page
    fields (page, previous_page, next_page) when the page has items, as when counted."""
    metadata: dict[str, Any] = {"first_page": 1}
    if has_items:
        metadata["page"] = page
        if page > 1:
            metadata["previous_page"] = page - 1
        if has_next:
            metadata["next_page"] = page + 1
    return PaginationMetadataSchema().dump(metadata)


def _next_url(cursor: int) -> str:
    """This request's URL, as the client sent it, starting at the cursor."""
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
    return f"{request.base_url}?{urlencode([*query, ('cursor', cursor)])}"
