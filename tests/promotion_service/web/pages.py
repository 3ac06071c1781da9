"""Driving the web pages with Flask's test client: sign in, read the CSRF token, post forms."""

from __future__ import annotations

import re
from typing import Any

from tests.promotion_service.helpers import deploy, promoted_to_staging, ref, verify

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class Browser:
    """One person's cookie jar against the app (Flask's test client)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def sign_in(self, token: str) -> Any:
        form = self.client.get("/ui/sign-in")
        return self.client.post("/ui/sign-in", data={"token": token,
                                                     "csrf_token": csrf_of(form.text)})

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, Any], *, from_page: str = "/ui/",
             csrf: bool = True) -> Any:
        """Post a form as the page at `from_page` would (with its CSRF token)."""
        if csrf:
            data = {"csrf_token": csrf_of(self.client.get(from_page).text)} | data
        return self.client.post(path, data=data)


def to_staging(api: Any, app: Any, n: int, pipeline_id: int) -> None:
    """Image n through test into staging, deployed and verified there."""
    promotion_id = promoted_to_staging(api, app, n)
    claimed = api.post("/claims", json=ref(n, "staging") | {
        "promotion_id": promotion_id, "pipeline_id": pipeline_id})
    assert claimed.status_code == 201, claimed.json
    deploy(api, n, "staging")
    verify(api, n, "staging")
