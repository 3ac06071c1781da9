"""Scans without network access, and the misconfiguration scan as an explicit choice.

`--offline` (CD_SCAN_OFFLINE) is the one switch: trivy then asks nothing of the internet, for
no scanner. What trivy asks is seen by a proxy every request of trivy's goes through
(HTTPS_PROXY); it records and refuses them. The real trivy scans a real image.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from steps.cli import run

pytestmark = pytest.mark.docker

DATA = Path(__file__).parents[1] / "data"
IMAGE = "registry.example.com/team/app@sha256:" + "ab" * 32


class _Refusing(BaseHTTPRequestHandler):
    seen: list[str]

    def _refuse(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_CONNECT = do_GET = do_HEAD = do_POST = _refuse

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def recording_proxy() -> Iterator[tuple[str, list[str]]]:
    """An HTTP(S) proxy that refuses everything and keeps what was asked: (its URL, requests)."""
    seen: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 type("Proxy", (_Refusing,), {"seen": seen}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def image(images):
    return images.build(files={"app.txt": "hello\n"}, dockerfile="COPY app.txt /app/app.txt")


@pytest.fixture
def dockerfile(workdir):
    Path("Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n")
    return "Dockerfile"


def _scan(image: str, dockerfile: str, tmp_path: Path, monkeypatch, *extra: str):
    with recording_proxy() as (proxy, seen):
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            monkeypatch.setenv(name, proxy)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        code = run(["scan", image, "--image-src", "docker", "--scanners", "secret,misconfig",
                    "--dockerfile", dockerfile, "--severity-threshold", "NONE",
                    "--cache-dir", str(tmp_path / "trivy-cache"), *extra], {})
    return code, list(seen)


def test_offline_every_scanner_works_and_nothing_is_asked_of_the_network(
        image, dockerfile, tmp_path, monkeypatch, capsys):
    code, seen = _scan(image, dockerfile, tmp_path, monkeypatch, "--offline")
    log = capsys.readouterr().err
    assert code == 0, log
    assert seen == []
    assert "DS-0002" in log  # the Dockerfile was checked, with the checks trivy carries


def test_without_the_switch_trivy_fetches_its_checks_bundle(image, dockerfile, tmp_path,
                                                           monkeypatch, capsys):
    """What the test above would see if the switch left a fetch on: the proxy catches it."""
    _scan(image, dockerfile, tmp_path, monkeypatch)
    capsys.readouterr()
    assert any("trivy-checks" in request or "CONNECT" in request
               for request in _scan(image, dockerfile, tmp_path, monkeypatch)[1])


def test_the_builds_dockerfile_variable_adds_no_checks(workdir, capsys):
    # the template sets CD_DOCKERFILE for the build; the scan takes no hint from it
    code = run(["scan", IMAGE, "--from-report", str(DATA / "trivy-clean.json")],
               {"CD_DOCKERFILE": "Dockerfile"})
    assert code == 0, capsys.readouterr().err


def test_a_dockerfile_without_the_misconfig_scanner_is_an_error_naming_the_fix(workdir,
                                                                              dockerfile,
                                                                              capsys):
    code = run(["scan", IMAGE, "--dockerfile", dockerfile, "--scanners", "secret"], {})
    assert code == 2
    assert ("Error: --dockerfile (from --dockerfile): only the misconfig scanner checks a "
            "Dockerfile; add it: --scanners secret,misconfig") in capsys.readouterr().err
