"""Pages of a listing, cut by the database (OFFSET/LIMIT and COUNT), not in Python."""

from __future__ import annotations

from typing import Any

from flask_smorest import Page

MAX_OFFSET = 2**62


class ListingPage(Page):
    """flask-smorest's pager over a db.listing.Listing that a use case returned."""

    @property
    def items(self) -> list[Any]:
        params = self.page_params
        if params.first_item > MAX_OFFSET:  # past any table's end, and past SQL's OFFSET range
            return []
        return self.collection.page(params.first_item, params.page_size)

    @property
    def item_count(self) -> int:
        return self.collection.count()
