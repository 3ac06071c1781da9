"""The service's image and Compose file, built and run for real: the image from a Debian base
(mmdebstrap) with the project installed offline from a wheelhouse, PostgreSQL from Debian's
package, `db upgrade` as the owner role, a token, and a gate passed through the published port.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.debian_images import ROOT, debian_base_image, wheelhouse
from tests.support import TEST_LABEL, free_port, wait_for_http

HERE = Path(__file__).resolve().parent
COMPOSE = ROOT / "deploy" / "promotion-service.compose.yml"
REPOSITORY = "registry.example.com/group/app"
DIGEST = "sha256:" + "c0" * 32

pytestmark = pytest.mark.docker


def build(docker, context: Path, tag: str, **kwargs) -> str:
    try:
        docker.images.build(path=str(context), tag=tag, rm=True, forcerm=True,
                            labels={TEST_LABEL: "1"}, **kwargs)
    except Exception as exc:  # BuildError carries the log; show its end
        log = "".join(str(chunk.get("stream", "")) for chunk in getattr(exc, "build_log", []))
        raise AssertionError(f"docker build of {tag} failed: {exc}\n{log[-4000:]}") from None
    return tag


@pytest.fixture(scope="module")
def service_image(docker, tmp_path_factory):
    """promotion_service/Dockerfile FROM a Debian base, installed from the wheelhouse only."""
    context = tmp_path_factory.mktemp("service-image")
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy(ROOT / name, context / name)
    for package in ("promotion_service", "steps"):
        shutil.copytree(ROOT / package, context / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(wheelhouse("postgres"), context / "wheelhouse")
    tag = build(docker, context, f"docker-cd-test/promotion-service:{secrets.token_hex(4)}",
                dockerfile="promotion_service/Dockerfile", network_mode="none",
                buildargs={"BASE": debian_base_image(docker, ("python3", "python3-venv")),
                           "INSTALL": "--no-index --find-links /src/wheelhouse "
                                      "docker-cd[postgres]"})
    yield tag
    docker.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def postgres_image(docker):
    """PostgreSQL from Debian's package, speaking the official image's environment."""
    base = debian_base_image(docker, ("postgresql",))
    return build(docker, HERE, "docker-cd-test/postgres:bookworm",
                 dockerfile="postgres.Dockerfile", buildargs={"BASE": base})


class Compose:
    """docker-compose on deploy/promotion-service.compose.yml, as one test project."""

    def __init__(self, env: dict[str, str]) -> None:
        self.project = f"dcdtest{secrets.token_hex(4)}"
        self.env = {**os.environ, **env}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["docker-compose", "-p", self.project, "-f", str(COMPOSE), *args],
                              env=self.env, capture_output=True, text=True, timeout=600)
        if check and done.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def exec(self, service: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self("exec", "-T", service, *command, check=check)


def test_compose_runs_the_image_with_postgresql_and_a_gate_passes(service_image,
                                                                  postgres_image):
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose; "
                    ".ci/setup does)", pytrace=False)
    port, password = free_port(), secrets.token_urlsafe(12)
    compose = Compose({"PROMOTION_IMAGE": service_image, "POSTGRES_IMAGE": postgres_image,
                       "POSTGRES_PASSWORD": secrets.token_urlsafe(12),
                       "PROMOTION_DB_PASSWORD": password,
                       "PROMOTION_PUBLISH": f"127.0.0.1:{port}"})
    try:
        started = compose("up", "-d", "--no-build", "service", check=False)
        if started.returncode != 0:
            logs = compose("logs", "--no-color", check=False).stdout[-6000:]
            raise AssertionError(f"docker-compose up failed:\n{started.stderr[-2000:]}\n{logs}")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{url}/ready", timeout=240, ok=(200,))
        except RuntimeError as e:
            logs = compose("logs", "--no-color", check=False).stdout[-6000:]
            raise AssertionError(f"{e}\n{logs}") from None
        assert "database at revision" in compose("logs", "--no-color", "migrate").stdout

        token = compose.exec("service", "promotion-service", "token", "create", "--role", "ci",
                             "--name", "pipeline", "--project", "group/app").stdout.strip()
        auth = {"Authorization": f"Bearer {token}"}
        ref = {"repository": REPOSITORY, "digest": DIGEST}
        for path, body in (("images", {"project": "group/app"}), ("scans", {"counts": {}}),
                           ("deployments", {"environment": "test", "state": "succeeded"}),
                           ("verifications", {"environment": "test", "passed": True})):
            answer = requests.post(f"{url}/api/v1/{path}", json=ref | body, headers=auth,
                                   timeout=30)
            assert answer.status_code == 201, (path, answer.text)
        gate = requests.get(f"{url}/api/v1/gate", params=ref | {"environment": "test"},
                            headers=auth, timeout=30)
        assert gate.status_code == 200 and gate.json()["allowed"] is True, gate.text

        # the service's role only appends to the audit log, and the chain checks out
        refused = compose("exec", "-T", "-e", f"PGPASSWORD={password}", "db", "psql", "-h",
                          "127.0.0.1", "-U", "promotion", "-d", "promotion", "-c",
                          "TRUNCATE audit_log", check=False)
        assert refused.returncode != 0 and "permission denied" in refused.stderr
        compose.exec("service", "promotion-service", "audit", "verify")
    finally:
        compose("down", "-v", "--remove-orphans", check=False)
