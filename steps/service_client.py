"""The steps' client for the promotion service's JSON API (`/api/v1`).

Transient failures (connection refused, timeouts, 5xx, 429) are retried with backoff; after
that the step ends with exit 3. A refused token is a usage error (exit 2) naming
CD_SERVICE_TOKEN; a 409 is the service's "no" (exit 1) with its reasons.
"""

from __future__ import annotations

from typing import Any

import requests
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from steps.errors import ExternalError, Refused, UsageError


class _Transient(Exception):
    pass


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
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=0.5, max=self.max_wait),
            retry=retry_if_exception_type(_Transient),
            reraise=False,
        )
        try:
            response = retrying(self._send, method, url, **kwargs)
        except RetryError as e:
            cause = e.last_attempt.exception()
            raise ExternalError(
                f"promotion service {method} {url} failed after {self.attempts} attempts: {cause}"
            ) from cause
        return self._decode(method, url, response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise _Transient(f"cannot reach the service: {type(e).__name__}") from e
        if response.status_code >= 500 or response.status_code == 429:
            raise _Transient(f"HTTP {response.status_code}")
        return response

    @staticmethod
    def _decode(method: str, url: str, response: requests.Response) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = {"message": response.text[:200]}
        if response.status_code < 400:
            return body
        message = (body or {}).get("message") if isinstance(body, dict) else None
        detail = f"{method} {url}: HTTP {response.status_code}: {message or response.reason}"
        if response.status_code in (401, 403):
            raise UsageError(f"the promotion service refused the token ({detail}); "
                             "set CD_SERVICE_TOKEN to a token with the right role")
        if response.status_code == 409:
            reasons = (body or {}).get("reasons", []) if isinstance(body, dict) else []
            raise Refused(detail, [r.get("message", str(r)) if isinstance(r, dict) else str(r)
                                   for r in reasons])
        raise UsageError(f"the promotion service rejected the request: {detail} "
                         f"{(body or {}).get('errors', '') if isinstance(body, dict) else ''}")
