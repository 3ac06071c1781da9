"""Swagger UI in a real browser: served by the service alone, working under its
Content-Security-Policy (no inline script, nothing from another origin)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from docker_cd_local.service import PromotionService


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.fail("Chromium is not installed (apt-get install chromium; .ci/setup does)",
                pytrace=False)


def test_swagger_ui_renders_every_operation_offline(tmp_path):
    service = PromotionService.start(tmp_path / "svc")
    try:
        page = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
             "--enable-logging=stderr", "--v=0", "--dump-dom", f"{service.url}/api/v1/docs"],
            capture_output=True, text=True, timeout=120)
        spec = service.api("GET", "openapi.json")
    finally:
        service.stop()
    operations = sum(method in ("get", "put", "post", "patch", "delete")
                     for path in spec["paths"].values() for method in path)
    assert page.stdout.count('class="opblock-summary-path"') == operations, page.stderr[-3000:]
    assert "/api/v1/gate" in page.stdout  # drawn by scripts the page's policy let run
