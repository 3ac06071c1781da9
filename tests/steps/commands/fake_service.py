"""A hand-written stand-in for the promotion service's client: it answers from a list and keeps
every request, so a command test checks what the command asks and how it reads the answers
without starting the service (the tests beside these run against the real one)."""

from __future__ import annotations

import io
from typing import Any

from steps.context import Context
from steps.runtime.log import Log


class FakeService:
    """Answers requests in order; `requests` holds (method, path, params or body) of each."""

    base = "http://service.test/api/v1"

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.requests.append((method, path, kwargs.get("params", kwargs.get("json"))))
        return self.answers.pop(0)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)


def context(service: FakeService) -> tuple[Context, io.StringIO]:
    """A command's context with the fake service, and the log it writes."""
    log = io.StringIO()
    ctx = Context(Log(stream=log), {}, process_environ={}, service=service)  # type: ignore[arg-type]
    return ctx, log
