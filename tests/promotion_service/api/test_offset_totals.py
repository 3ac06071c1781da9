"""Offset pagination's X-Pagination header: the totals of a list up to COUNT_LIMIT rows, as
flask-smorest writes them; past it, as GitLab's API does past 10,000, no total, total_pages
or last_page, and the page fields (page, previous_page, next_page) still right."""

from __future__ import annotations

import json
from typing import Any

import pytest

from promotion_service.api import pagination
from tests.promotion_service.helpers import register

LISTS = ["/images", "/releases"]
ROWS = 5


def header(api: Any, path: str, page: int, page_size: int = 2) -> tuple[dict[str, Any], int]:
    """The X-Pagination header of one offset page, and how many items the page holds."""
    resp = api.get(path, query_string={"page": page, "page_size": page_size}, as_="rm")
    assert resp.status_code == 200, resp.json
    return json.loads(resp.headers["X-Pagination"]), len(resp.json)


@pytest.fixture
def five_images(api: Any) -> None:
    """ROWS images, each with its release."""
    for n in range(ROWS):
        register(api, n)


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("limit", [ROWS, 10_000])
def test_a_list_up_to_the_limit_has_every_total(api, five_images, monkeypatch, path, limit):
    monkeypatch.setattr(pagination, "COUNT_LIMIT", limit)
    totals = {"total": 5, "total_pages": 3, "first_page": 1, "last_page": 3}
    assert header(api, path, 1) == (totals | {"page": 1, "next_page": 2}, 2)
    assert header(api, path, 2) == (totals | {"page": 2, "previous_page": 1, "next_page": 3}, 2)
    assert header(api, path, 3) == (totals | {"page": 3, "previous_page": 2}, 1)
    assert header(api, path, 4) == (totals, 0)
    assert header(api, path, 1, page_size=5) == (
        {"total": 5, "total_pages": 1, "first_page": 1, "last_page": 1, "page": 1}, 5)


def test_an_empty_list_has_a_total_of_zero(api):
    assert header(api, "/images", 1) == ({"total": 0, "total_pages": 0}, 0)


@pytest.mark.parametrize("path", LISTS)
def test_a_list_past_the_limit_leaves_the_totals_out(api, five_images, monkeypatch, path):
    monkeypatch.setattr(pagination, "COUNT_LIMIT", ROWS - 1)
    assert header(api, path, 1) == ({"first_page": 1, "page": 1, "next_page": 2}, 2)
    assert header(api, path, 2) == (
        {"first_page": 1, "page": 2, "previous_page": 1, "next_page": 3}, 2)
    assert header(api, path, 3) == ({"first_page": 1, "page": 3, "previous_page": 2}, 1)
    assert header(api, path, 4) == ({"first_page": 1}, 0)
    # a page that ends exactly at the list's end has no next page
    assert header(api, path, 1, page_size=5) == ({"first_page": 1, "page": 1}, 5)
    assert header(api, path, 5, page_size=1) == (
        {"first_page": 1, "page": 5, "previous_page": 4}, 1)
    assert header(api, path, 4, page_size=1) == (
        {"first_page": 1, "page": 4, "previous_page": 3, "next_page": 5}, 1)


def test_past_the_limit_the_pages_hold_the_same_items(api, five_images, monkeypatch):
    whole = [row["id"] for row in api.get("/images", query_string={"page_size": 100}).json]
    monkeypatch.setattr(pagination, "COUNT_LIMIT", 1)
    pages = [api.get("/images", query_string={"page": page, "page_size": 2}).json
             for page in (1, 2, 3)]
    assert [row["id"] for page in pages for row in page] == whole
