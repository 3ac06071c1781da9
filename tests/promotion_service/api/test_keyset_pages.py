"""Keyset pagination (pagination=keyset): every row exactly once, in the list's order, while
rows arrive between pages; the Link header's next URL works as given; no totals, no OFFSET."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from promotion_service import db
from promotion_service.db.models import Project, Release, Rollout
from tests.promotion_service.gitlab_fixtures import environment, make_project, make_promotion
from tests.promotion_service.helpers import PROJECT, register, sent_statements

LISTS = ["/images", "/releases", "/promotions", "/audit", "/projects",
         "/projects/{project}/environments/staging/releases"]
PAGE = 3


def grow(app: Any, api: Any, n: int) -> int:
    """One more row in every list: image n (its release and audit entries), a promotion of
    that release into staging and its rollout there, and a project; group/app's id."""
    register(api, n)
    with db.session_for(app) as session:
        project = session.scalars(select(Project).where(Project.path == PROJECT)).one()
        release = session.scalars(select(Release).order_by(Release.id.desc()).limit(1)).one()
        promotion = make_promotion(session, project, release, "staging")
        session.add(Rollout(environment_id=environment(session, project, "staging").id,
                            release_id=release.id, promotion_id=promotion.id))
        make_project(session, path=f"keyset/app-{n}", gitlab_id=None)
        return project.id


def get_url(api: Any, url: str) -> Any:
    """GET a URL exactly as the service wrote it (absolute, query included)."""
    return api.client.get(url, headers={"Authorization": f"Bearer {api.tokens['rm']}"})


def ids(resp: Any) -> list[int]:
    assert resp.status_code == 200, resp.json
    return [row["id"] for row in resp.json]


def next_url(resp: Any) -> str | None:
    link = resp.headers.get("Link")
    if link is None:
        return None
    url, rel = link.split("; ")
    assert rel == 'rel="next"' and url.startswith("<http://localhost/api/v1/"), link
    return url[1:-1]


@pytest.mark.parametrize("path", LISTS)
def test_keyset_pages_hold_every_row_once_while_rows_arrive(app, api, path):
    project = 0
    for n in range(7):
        project = grow(app, api, n)
    path = path.format(project=project)
    before = ids(api.get(path, query_string={"page_size": 100}, as_="rm"))
    assert len(before) >= 7
    newest_first = path != "/projects"
    assert before == sorted(before, reverse=newest_first)

    seen, pages, n = [], 0, 100
    resp = api.get(path, query_string={"pagination": "keyset", "page_size": PAGE}, as_="rm")
    while True:
        seen += ids(resp)
        pages += 1
        assert "X-Pagination" not in resp.headers
        url = next_url(resp)
        if url is None:
            break
        assert len(resp.json) == PAGE
        n += 1
        grow(app, api, n)  # rows arrive between pages
        resp = get_url(api, url)
    assert len(seen) == len(set(seen)), f"a row came twice: {seen}"
    if newest_first:  # the rows that arrived are above the first page: none is missed
        assert seen == before
    else:  # oldest first: the rows that arrived come last
        assert seen[:len(before)] == before and seen == sorted(seen)
        assert len(seen) > len(before)
    assert pages >= 3

    # the same walk by offset repeats rows (what keyset pagination is for)
    if newest_first:
        first = ids(api.get(path, query_string={"page": 1, "page_size": PAGE}, as_="rm"))
        grow(app, api, n + 1)
        second = ids(api.get(path, query_string={"page": 2, "page_size": PAGE}, as_="rm"))
        assert set(first) & set(second)


def test_keyset_pages_keep_the_filters_and_send_no_count_or_offset(app, api):
    for n in range(5):
        grow(app, api, n)
    query = {"pagination": "keyset", "page_size": 2, "project": PROJECT,
             "environment": "staging"}
    every = ids(api.get("/promotions", query_string={"project": PROJECT, "page_size": 100},
                        as_="rm"))
    with sent_statements(app) as statements:
        resp = api.get("/promotions", query_string=query, as_="rm")
        seen = ids(resp)
        while (url := next_url(resp)) is not None:
            assert "project=group%2Fapp" in url and "environment=staging" in url
            resp = get_url(api, url)
            seen += ids(resp)
    assert seen == every and len(seen) == 5
    assert len(statements) >= 3
    for statement, parameters in statements:
        assert "count(" not in statement.lower(), statement
        if "OFFSET" in statement:  # SQLite's dialect writes OFFSET 0 after every LIMIT
            assert statement.endswith("LIMIT ? OFFSET ?") and parameters[-1] == 0, statement


def test_the_last_keyset_page_has_no_link_and_past_the_end_is_empty(api):
    for n in range(2):
        register(api, n)
    resp = api.get("/images", query_string={"pagination": "keyset", "page_size": 2}, as_="rm")
    assert len(resp.json) == 2 and "Link" not in resp.headers
    last = resp.json[-1]["id"]
    resp = api.get("/images", query_string={"pagination": "keyset", "cursor": last}, as_="rm")
    assert resp.status_code == 200 and resp.json == [] and "Link" not in resp.headers


def test_offset_pages_still_carry_their_totals_and_each_way_ignores_the_others_field(api):
    newest = [register(api, n)["id"] for n in range(3)][::-1]
    resp = api.get("/images", query_string={"page": 1, "page_size": 2}, as_="rm")
    assert ids(resp) == newest[:2] and '"total": 3' in resp.headers["X-Pagination"]
    assert "Link" not in resp.headers
    resp = api.get("/images", query_string={"page": 2, "page_size": 2, "cursor": newest[0]},
                   as_="rm")
    assert ids(resp) == newest[2:] and '"total": 3' in resp.headers["X-Pagination"]
    resp = api.get("/images", query_string={"pagination": "keyset", "page": 2, "page_size": 2},
                   as_="rm")
    assert ids(resp) == newest[:2] and "X-Pagination" not in resp.headers


@pytest.mark.parametrize(("query", "field"), [
    ({"pagination": "keyset", "cursor": "abc"}, "cursor"),
    ({"pagination": "keyset", "cursor": "0"}, "cursor"),
    ({"pagination": "keyset", "cursor": str(2**31)}, "cursor"),  # ids are 32-bit
    ({"pagination": "cursor"}, "pagination"),
])
def test_a_bad_cursor_is_refused_by_name(api, query, field):
    resp = api.get("/images", query_string=query, as_="rm")
    assert resp.status_code == 422 and resp.is_json, resp.data
    assert field in resp.json["errors"]["query"], resp.json
    assert field in resp.json["message"]
