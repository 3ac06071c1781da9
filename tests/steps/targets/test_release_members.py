"""A release of several images (issue 14) on both targets: `api` and `worker`, each built by
the pipeline and named by its CD_IMAGE_<NAME>, plus a config file, pulled from a registry that
asks for a password on every request.

All members or none: a release whose worker fails its health check leaves the previous release
serving in full (its api too); a rollback restores every image and the configuration together;
a member named by tag is refused before the engine is touched.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from steps import cli
from steps.template import deploy_files_hash
from tests.conftest import REGISTRY_PASSWORD
from tests.steps.deploy_sample import WEB_DOCKERFILE, remove_project
from tests.steps.registry_helpers import push_image
from tests.steps.swarm_support import remove_swarm_project
from tests.steps.targets.test_registry_auth import ci_variables, forget
from tests.support import free_port

pytestmark = pytest.mark.docker

HEALTH = """\
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 100ms
      timeout: 5s
      retries: 20
    stop_grace_period: 1s
"""
COMPOSE = f"""\
services:
  api:
    image: ${{CD_IMAGE_API}}
    configs:
      - source: settings
        target: /www/settings.txt
{HEALTH}  worker:
    image: ${{CD_IMAGE_WORKER}}
{HEALTH}configs:
  settings:
    file: ./settings.txt
"""
OVERLAYS = {
    "docker": 'services:\n  api:\n    ports: ["127.0.0.1:${API_PORT}:8080"]\n'
              '  worker:\n    ports: ["127.0.0.1:${WORKER_PORT}:8080"]\n',
    "swarm": 'services:\n  api:\n    ports: ["${API_PORT}:8080"]\n    init: true\n'
             '  worker:\n    ports: ["${WORKER_PORT}:8080"]\n    init: true\n',
}


@pytest.fixture(scope="module")
def members(docker, images, auth_registry):
    """api v1, v2 and worker v1, v2, bad (no health file) in the password-only registry, by
    digest; none left on the engine."""
    tag = uuid.uuid4().hex[:8]
    found = {}
    for name, version in (("api", "1"), ("api", "2"), ("worker", "1"), ("worker", "2"),
                          ("worker", "bad")):
        files = {"www/index.html": f"{name} {version}\n"}
        if version != "bad":
            files["www/health"] = "ok\n"
        local = images.build(dockerfile=WEB_DOCKERFILE, files=files,
                             labels={"release-members-test": tag})
        repository = f"members-{tag}/{name}"
        digest = push_image(docker, local, auth_registry, repository, version)
        found[f"{name}{version}"] = f"{auth_registry.host}/{repository}@{digest}"
        forget(docker, local)
    return found


def _run(capsys, argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    code = cli.run(argv, env)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def _get(port: int, path: str = "/") -> str:
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).text


@pytest.mark.parametrize("target", ["docker", pytest.param("swarm", marks=pytest.mark.swarm)])
def test_a_release_of_two_images_deploys_fails_and_rolls_back_as_one(
        request, docker, auth_registry, members, tmp_path, capsys, target):
    if target == "swarm":
        request.getfixturevalue("swarm")
    template = tmp_path / "deploy"
    template.mkdir()
    (template / "compose.yml").write_text(COMPOSE)
    (template / "compose.test.yml").write_text(OVERLAYS[target])
    project = f"members-{uuid.uuid4().hex[:8]}"
    api_port, worker_port = free_port(), free_port()
    base = {"CD_PROJECT": project, "CD_DEPLOY_TARGET": target, "CD_TEMPLATE_DIR": str(template),
            "API_PORT": str(api_port), "WORKER_PORT": str(worker_port),
            "CD_HEALTH_TIMEOUT": "60", **ci_variables(auth_registry)}

    def deploy(api: str, worker: str, settings: str, release_id: str) -> tuple[int, str]:
        (template / "settings.txt").write_text(settings)
        return _run(capsys, ["deploy", "--environment", "test"],
                    {**base, "CD_IMAGE_API": members[api], "CD_IMAGE_WORKER": members[worker],
                     "CD_RELEASE_ID": release_id,
                     "CD_RELEASE_TEMPLATE_HASH": deploy_files_hash(template)})

    def serving() -> tuple[str, str, str]:
        return _get(api_port), _get(api_port, "/settings.txt"), _get(worker_port)

    try:
        code, log = deploy("api1", "worker1", "one\n", "7")
        assert code == 0, log
        assert serving() == ("api 1\n", "one\n", "worker 1\n")
        code, log = deploy("api1", "worker2", "two\n", "8")  # only the worker and config change
        assert code == 0, log
        assert serving() == ("api 1\n", "two\n", "worker 2\n")
        assert REGISTRY_PASSWORD not in log

        code, log = deploy("api2", "workerbad", "three\n", "9")
        assert code == 1, log
        assert "worker" in log
        assert serving() == ("api 1\n", "two\n", "worker 2\n")  # all of release 8, its api too

        listing = tmp_path / "releases.json"
        code, log = _run(capsys, ["releases", "--environment", "test", "--json", str(listing)],
                         base)
        assert code == 0, log
        failed, second, first = json.loads(listing.read_text())["releases"]
        assert [r["release_id"] for r in (failed, second, first)] == [9, 8, 7]
        assert (failed["status"], second["status"]) == ("failed", "succeeded")
        assert second["members"] == {"api": members["api1"], "worker": members["worker2"]}
        assert "RELEASE" in log and members["worker2"].split("@")[1][:19] in log

        code, log = _run(capsys, ["rollback", "--environment", "test"], base)
        assert code == 0, log
        assert serving() == ("api 1\n", "one\n", "worker 1\n")  # images and config of 7
        code, log = _run(capsys, ["releases", "--environment", "test", "--json", str(listing)],
                         base)
        rollback = json.loads(listing.read_text())["releases"][0]
        assert (rollback["kind"], rollback["rollback_of"]) == ("rollback", first["id"])
        assert (rollback["release_id"], rollback["members"]) == (7, first["members"])
    finally:
        (remove_swarm_project if target == "swarm" else remove_project)(docker, project)


def test_a_member_named_by_tag_is_refused_naming_service_and_variable(members, tmp_path, capsys):
    template = tmp_path / "deploy"
    template.mkdir()
    (template / "compose.yml").write_text(COMPOSE)
    (template / "compose.test.yml").write_text(OVERLAYS["docker"])
    (template / "settings.txt").write_text("one\n")
    by_tag = members["worker1"].split("@")[0] + ":1"
    code, log = _run(capsys, ["deploy", "--environment", "test"], {
        "CD_PROJECT": f"members-{uuid.uuid4().hex[:8]}", "CD_TEMPLATE_DIR": str(template),
        "API_PORT": "1", "WORKER_PORT": "2", "CD_IMAGE_API": members["api1"],
        "CD_IMAGE_WORKER": by_tag})
    assert code == 2, log
    assert "service worker: CD_IMAGE_WORKER" in log and "not pinned by digest" in log
    assert "service api" not in log


def test_a_service_that_does_not_run_its_member_variable_is_refused(members, tmp_path, capsys):
    template = tmp_path / "deploy"
    template.mkdir()
    (template / "compose.yml").write_text(COMPOSE.replace("${CD_IMAGE_WORKER}", members["worker2"]))
    (template / "compose.test.yml").write_text(OVERLAYS["docker"])
    (template / "settings.txt").write_text("one\n")
    code, log = _run(capsys, ["deploy", "--environment", "test"], {
        "CD_PROJECT": f"members-{uuid.uuid4().hex[:8]}", "CD_TEMPLATE_DIR": str(template),
        "API_PORT": "1", "WORKER_PORT": "2", "CD_IMAGE_API": members["api1"],
        "CD_IMAGE_WORKER": members["worker1"]})
    assert code == 2, log
    assert "service worker: its image is" in log and "${CD_IMAGE_WORKER}" in log
