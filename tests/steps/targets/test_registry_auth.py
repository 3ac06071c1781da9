"""deploy and rollback pull what the engine has not got, with the one credential chain every step
uses, on both targets.

The registry asks for a password on every request, pulls included (htpasswd: the engine gets no
anonymous access either); there is no Docker config file; the images were pushed and then
removed from the engine, as on a fresh runner or another engine. The credentials come only from
CI_REGISTRY_USER/CI_REGISTRY_PASSWORD or DOCKER_AUTH_CONFIG.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid

import pytest
import requests

from steps import cli
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER
from tests.steps.deploy_sample import WEB_DOCKERFILE, WEB_ONLY, remove_project
from tests.steps.registry_helpers import push_image
from tests.steps.swarm_support import remove_swarm_project
from tests.support import free_port

pytestmark = pytest.mark.docker

OVERLAYS = {
    "docker": 'services:\n  web:\n    ports: ["127.0.0.1:${WEB_PORT}:8080"]\n',
    # swarm: host-mode ports (no routing mesh here); init so httpd stops at once
    "swarm": 'services:\n  web:\n    ports: ["${WEB_PORT}:8080"]\n    init: true\n',
}


@pytest.fixture(scope="module")
def pushed(docker, images, auth_registry):
    """Two versions of a web image in the password-only registry, by digest; none on the engine."""
    repository = f"auth-deploy/web-{uuid.uuid4().hex[:8]}"
    found = {}
    for version in ("1", "2"):
        local = images.build(dockerfile=WEB_DOCKERFILE, labels={"auth-pull-test": repository},
                             files={"www/index.html": f"version {version}\n",
                                    "www/health": "ok\n"})
        digest = push_image(docker, local, auth_registry, repository, f"v{version}")
        found[version] = f"{auth_registry.host}/{repository}@{digest}"
        docker.images.remove(local, force=True)
    return found


def forget(client, image: str) -> None:
    """Remove an image (built for this module alone) from the engine, whatever refers to it."""
    import docker.errors

    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(client.images.get(image).id, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(image)


def ci_variables(registry) -> dict[str, str]:
    return {"CI_REGISTRY": registry.host, "CI_REGISTRY_USER": REGISTRY_USER,
            "CI_REGISTRY_PASSWORD": REGISTRY_PASSWORD}


def auth_config(registry) -> dict[str, str]:
    pair = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    return {"DOCKER_AUTH_CONFIG": json.dumps({"auths": {registry.host: {"auth": pair}}})}


@pytest.fixture
def no_docker_config(tmp_path, monkeypatch):
    """No Docker config file anywhere: an empty DOCKER_CONFIG and HOME, for the process too."""
    empty = tmp_path / "empty-home"
    empty.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))
    monkeypatch.setenv("HOME", str(empty))
    return {"DOCKER_CONFIG": str(empty), "HOME": str(empty)}


def _run(capsys, argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    code = cli.run(argv, env)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def _answer(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/", timeout=5).text


@pytest.mark.parametrize(("target", "deploy_with", "rollback_with"), [
    ("docker", ci_variables, auth_config),
    pytest.param("swarm", auth_config, ci_variables, marks=pytest.mark.swarm),
])
def test_deploy_and_rollback_pull_with_the_ci_credentials(
        request, docker, auth_registry, pushed, no_docker_config, tmp_path, capsys, target,
        deploy_with, rollback_with):
    if target == "swarm":
        request.getfixturevalue("swarm")
    template = tmp_path / "deploy"
    template.mkdir()
    (template / "compose.yml").write_text(WEB_ONLY)
    (template / "compose.test.yml").write_text(OVERLAYS[target])
    project, port = f"authpull-{uuid.uuid4().hex[:8]}", free_port()
    base = {**no_docker_config, "CD_PROJECT": project, "CD_DEPLOY_TARGET": target,
            "CD_TEMPLATE_DIR": str(template), "WEB_PORT": str(port), "CD_HEALTH_TIMEOUT": "60"}
    try:
        for version in ("1", "2"):
            forget(docker, pushed[version])
            code, log = _run(capsys, ["deploy", "--environment", "test"],
                             {**base, **deploy_with(auth_registry), "CD_IMAGE": pushed[version]})
            assert code == 0, log
            assert _answer(port) == f"version {version}\n"
            assert REGISTRY_PASSWORD not in log

        forget(docker, pushed["1"])  # the release to go back to is no longer on the engine
        code, log = _run(capsys, ["rollback", "--environment", "test"],
                         {**base, **rollback_with(auth_registry)})
        assert code == 0, log
        assert _answer(port) == "version 1\n"
        assert REGISTRY_PASSWORD not in log
    finally:
        (remove_swarm_project if target == "swarm" else remove_project)(docker, project)
