"""The OpenAPI document is the API's contract with its clients: it changes only on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from promotion_service import create_app

COMMITTED = Path(__file__).with_name("openapi.json")


def test_the_served_openapi_document_is_the_committed_one(tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/promotion.db", "TESTING": True})
    resp = app.test_client().get("/api/v1/openapi.json")
    assert resp.status_code == 200
    if resp.data != COMMITTED.read_bytes():
        served = tmp_path / "openapi.json"
        served.write_bytes(resp.data)
        pytest.fail(f"/api/v1/openapi.json differs from {COMMITTED}: "
                    f"compare with `diff {COMMITTED} {served}`; if the API was meant to change, "
                    "copy the served document over the committed one")
