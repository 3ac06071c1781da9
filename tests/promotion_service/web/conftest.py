"""Fixtures for the pages: a signed-in browser per person of the tests' TOKENS."""

from __future__ import annotations

from typing import Any

import pytest

from tests.promotion_service.web.pages import Browser


@pytest.fixture
def browser(app: Any, tokens: dict[str, str]) -> Any:
    """browser("alice"): a fresh cookie jar signed in with that token."""

    def open_as(name: str) -> Browser:
        person = Browser(app.test_client())
        assert person.sign_in(tokens[name]).status_code == 302
        return person

    return open_as
