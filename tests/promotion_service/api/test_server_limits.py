"""Limits through the real server (waitress in front of the app): chunked bodies are bounded
like the others, and what the app refuses is JSON."""

from __future__ import annotations

import http.client
import json

import pytest

from docker_cd_local.service import PromotionService


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    service = PromotionService.start(tmp_path_factory.mktemp("limits") / "svc")
    yield service
    service.stop()


def send(service: PromotionService, method: str, path: str, body=None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={
            "Authorization": f"Bearer {service.tokens['ci']}", **(headers or {})},
            encode_chunked=body is not None and not isinstance(body, bytes | str))
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def chunks(total: int, size: int = 8192):
    yield b'{"tags": ["'
    for _ in range(total // size):
        yield b"a" * size
    yield b'"]}'


def test_a_chunked_body_over_the_limit_is_a_json_413(service):
    status, headers, body = send(service, "POST", "/api/v1/images", chunks(200_000),
                                 {"Content-Type": "application/json",
                                  "Transfer-Encoding": "chunked"})
    assert status == 413 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["code"] == 413


def test_a_chunked_body_within_the_limit_is_read(service):
    status, _, body = send(service, "POST", "/api/v1/images", chunks(16_000),
                           {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert status == 422 and "repository" in json.loads(body)["errors"]["json"]


def test_a_long_uri_is_a_json_414_through_the_server(service):
    status, headers, body = send(service, "GET", "/api/v1/images?repository=" + "a" * 9000)
    assert status == 414 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["request_id"]
