"""The steps' client for the promotion service's JSON API (`/api/v1`).

Transient failures (connection refused, timeouts, 5xx, 429) are retried with backoff; after
that the step ends with exit 3. A refused token is a usage error (exit 2) naming
CD_SERVICE_TOKEN; a 409 is the service's "no" (exit 1) with its reasons.
"""

from __future__ import annotations

from typing import Any

import requests

from steps.runtime.errors import ExternalError, Refused, UsageError
from steps.runtime.retry import Transient, call_with_retries


def reason_lines(reasons: list[Any]) -> list[str]:
    """One line per reason the service gives: what is missing, then what would satisfy it."""
    lines = []
    for reason in reasons:
        if not isinstance(reason, dict):
            lines.append(str(reason))
            continue
        text = str(reason.get("message") or reason.get("code") or reason)
        if reason.get("satisfy"):
            text += f" (to satisfy: {reason['satisfy']})"
        lines.append(text)
    return lines


class ServiceClient:
    """A small client: one `request` method; steps call the endpoints they need through it."""

    def __init__(self, url: str, token: str | None, attempts: int = 4,
                 timeout: float = 10.0, max_wait: float = 8.0) -> None:
        self.base = url.rstrip("/")
        if not self.base.endswith("/api/v1"):
            self.base += "/api/v1"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.attempts = attempts
        self.timeout = timeout
        self.max_wait = max_wait

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; return the decoded JSON body (None for an empty one)."""
        url = f"{self.base}/{path.lstrip('/')}"
        try:
            response = call_with_retries(lambda: self._send(method, url, **kwargs),
                                         attempts=self.attempts, multiplier=0.5,
                                         max_wait=self.max_wait)
        except Transient as e:
            raise ExternalError(
                f"promotion service {method} {url} failed after {self.attempts} attempts: {e}"
            ) from e
        return self._decode(method, url, response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise Transient(f"cannot reach the service: {type(e).__name__}") from e
        if response.status_code >= 500 or response.status_code == 429:
            raise Transient(f"HTTP {response.status_code}")
        return response

    @staticmethod
    def _decode(method: str, url: str, response: requests.Response) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = {"message": response.text[:200]}
        if response.status_code < 400:
            return body
        fields = body if isinstance(body, dict) else {}
        detail = (f"{method} {url}: HTTP {response.status_code}: "
                  f"{fields.get('message') or response.reason}")
        if response.status_code in (401, 403):
            raise UsageError(f"the promotion service refused the credential ({detail}); give "
                             "the job an ID token for the service (CD_SERVICE_ID_TOKEN, the "
                             "template's service_audience) or set CD_SERVICE_TOKEN to a token "
                             "with the right role and project")
        if response.status_code == 409:
            raise Refused(detail, reason_lines(fields.get("reasons") or []))
        raise UsageError(f"the promotion service rejected the request: {detail} "
                         f"{fields.get('errors', '')}")
