"""Lists cost the same number of queries however many rows they show: each row comes with
its image and environment names from the query that read it, never one query per row."""

from __future__ import annotations

from typing import Any

import pytest

from promotion_service import db
from promotion_service.db.models import Rollout
from tests.promotion_service.gitlab_fixtures import (
    environment,
    make_project,
    make_promotion,
    make_release,
)
from tests.promotion_service.helpers import sent_statements


def seed(app: Any, images: int) -> int:
    """`images` images, each promoted into staging and released there; the project id."""
    with db.session_for(app) as session:
        project = make_project(session, path="lists/app", gitlab_id=None)
        staging = environment(session, project, "staging")
        for n in range(images):
            release = make_release(session, project, n=n)
            promotion = make_promotion(session, project, release, "staging")
            session.add(Rollout(environment_id=staging.id, release_id=release.id,
                                promotion_id=promotion.id))
        return project.id


@pytest.mark.parametrize("listing", ["promotions", "releases"])
def test_a_longer_list_runs_no_more_queries(app, api, listing):
    project_id = seed(app, 6)
    path = ("/promotions?project=lists/app" if listing == "promotions"
            else f"/projects/{project_id}/environments/staging/releases")
    with sent_statements(app) as one_row:
        short = api.get(f"{path}{'&' if '?' in path else '?'}page_size=1", as_="rm")
    with sent_statements(app) as six_rows:
        full = api.get(path, as_="rm")
    assert (short.status_code, full.status_code) == (200, 200)
    assert len(short.json) == 1 and len(full.json) == 6
    assert len(six_rows) == len(one_row)
    assert {row["image"].split("@")[0] for row in full.json} == {
        "registry.example.com/group/app"}
    assert len({row["image"] for row in full.json}) == 6
    if listing == "promotions":
        assert {row["environment"] for row in full.json} == {"staging"}
