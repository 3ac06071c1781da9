"""The README's "try it with your own application": `scripts/demo.sh --app PATH` takes a team's
own application (not the example: another name, no .gitlab-ci.yml, its own variables) from a
commit to production, and `--clean` removes it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY site /site
HEALTHCHECK --interval=300ms --timeout=2s --retries=60 \\
  CMD ["/bin/wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
CMD ["httpd", "-f", "-p", "8080", "-h", "/site"]
"""
COMPOSE = "services:\n  web:\n    image: ${CD_IMAGE}\n    init: true\n    stop_grace_period: 1s\n"
OVERLAY = 'services:\n  web:\n    ports: ["127.0.0.1:${SHOP_%s_PORT}:8080"]\n'


def demo(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["sh", str(ROOT / "scripts" / "demo.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=840, check=False)


def test_a_teams_own_application_goes_to_production_with_one_command(tmp_path):
    app = tmp_path / "shop-front"
    (app / "deploy").mkdir(parents=True)
    (app / "site").mkdir()
    (app / "Dockerfile").write_text(DOCKERFILE)
    (app / "site" / "index.html").write_text("the shop\n")
    (app / "deploy" / "compose.yml").write_text(COMPOSE)
    ports = {env: free_port() for env in ("test", "staging", "production")}
    variables = []
    for env, port in ports.items():
        (app / "deploy" / f"compose.{env}.yml").write_text(OVERLAY % env.upper())
        variables += ["--variable", f"SHOP_{env.upper()}_PORT={port}"]
    workdir = tmp_path / "work"
    try:
        done = demo("--app", str(app), *variables, "--workdir", str(workdir), "--quiet")
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        for env, port in ports.items():
            assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "the shop\n"
            assert f"127.0.0.1:{port}" in done.stdout, env  # where it runs, printed
    finally:
        cleaned = demo("--clean", "--workdir", str(workdir))
    assert cleaned.returncode == 0, cleaned.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{ports['production']}/", timeout=5)


def test_a_directory_that_is_no_application_is_refused_naming_what_is_missing(tmp_path):
    done = demo("--app", str(tmp_path))
    assert done.returncode == 2
    assert "no Dockerfile and no deploy/compose.yml" in done.stderr


def test_the_shop_example_needs_no_dockerfile_of_its_own():
    """Its .gitlab-ci.yml names the images to build, each in its own directory."""
    from docker_cd_local.demo import check_app

    assert check_app(ROOT / "examples" / "shop") is None
    assert check_app(ROOT / "examples" / "shop" / "deploy") == (
        f"--app {ROOT / 'examples' / 'shop' / 'deploy'}: no Dockerfile and no deploy/compose.yml; "
        "the pipeline builds the Dockerfile and deploys deploy/compose.yml (plus "
        "deploy/compose.<environment>.yml)")
