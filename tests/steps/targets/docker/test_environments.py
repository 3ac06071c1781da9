"""An environment is validated before anything is created, a typo'd one is refused, and one
can be torn down keeping its data."""

from __future__ import annotations

import json

import pytest

from tests.steps.deploy_sample import build_sample, remove_project
from tests.steps.targets.docker.test_target import step

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def sample(docker, images, tmp_path_factory):
    built = build_sample(images, tmp_path_factory.mktemp("envs") / "deploy",
                         environments=("test", "production"))
    yield built
    remove_project(docker, built.project)


def created(docker, project: str) -> list[str]:
    """Every container, network and volume the engine holds for the project."""
    label = {"label": f"io.docker-cd.project={project}"}
    return ([c["Names"][0] for c in docker.api.containers(all=True, filters=label)]
            + [n["Name"] for n in docker.api.networks(filters=label)]
            + [v["Name"] for v in docker.api.volumes(filters=label).get("Volumes") or []])


@pytest.mark.parametrize(("line", "problem"), [
    ("restart: sometimes", "services.db.restart: expected no, always, unless-stopped or "
                           "on-failure[:N], got 'sometimes'"),
    ("deploy: {replicas: two}", "services.db.deploy.replicas: expected a whole number"),
    ("healthcheck: {retries: many}", "services.db.healthcheck.retries: expected a whole number"),
])
def test_a_wrong_value_fails_with_exit_2_leaving_nothing_behind(sample, docker, capsys, line,
                                                                problem):
    overlay = sample.directory / "compose.production.yml"
    good = overlay.read_text()
    overlay.write_text(good + f"  db:\n    {line}\n")
    try:
        code, log = step(["deploy", "--environment", "production"], sample.env("production"),
                         capsys)
    finally:
        overlay.write_text(good)
    assert code == 2, log
    assert f"compose.production.yml:5: {problem}" in log
    assert "ValueError" not in log
    assert created(docker, sample.project) == []


def test_a_typo_in_the_environment_is_refused_naming_the_likely_one(sample, docker, capsys):
    code, log = step(["deploy", "--environment", "prod"], sample.env("test"), capsys)
    assert code == 2, log
    assert "prod has no compose.prod.yml" in log and "did you mean 'production'?" in log
    assert "--new-environment (CD_NEW_ENVIRONMENT=true)" in log
    assert created(docker, sample.project) == []


def test_teardown_removes_the_environment_and_keeps_its_data(sample, docker, capsys):
    code, log = step(["deploy", "--environment", "test"], sample.env("test"), capsys)
    assert code == 0, log
    [db] = docker.containers.list(filters={"name": f"{sample.project}-test-db-1"})
    db.exec_run(["sh", "-c", "echo precious > /data/keep.txt"])
    code, log = step(["teardown", "--environment", "test"], {"CD_PROJECT": sample.project},
                     capsys)
    assert code == 0, log
    assert f"Kept the volumes {sample.project}-test_data" in log
    assert created(docker, sample.project) == [f"{sample.project}-test_data"]
    code, log = step(["releases", "--environment", "test"], {"CD_PROJECT": sample.project},
                     capsys)
    assert "No release of" in log
    code, log = step(["deploy", "--environment", "test"], sample.env("test"), capsys)
    assert code == 0, log
    [db] = docker.containers.list(filters={"name": f"{sample.project}-test-db-1"})
    assert db.exec_run(["cat", "/data/keep.txt"]).output == b"precious\n"
    code, log = step(["teardown", "--environment", "test", "--volumes"],
                     {"CD_PROJECT": sample.project}, capsys)
    assert code == 0, log
    assert created(docker, sample.project) == []
    code, log = step(["teardown", "--environment", "test"], {"CD_PROJECT": sample.project},
                     capsys)
    assert code == 0 and "Nothing of" in log


SECRET_ENV = """\
services:
  web:
    image: ${CD_IMAGE}
    environment:
      API_TOKEN: ${API_TOKEN}
      DATABASE_URL: postgres://app:${DB_PASS}@db/app
      MODE: plain
    healthcheck: {test: [CMD, 'true'], interval: 100ms}
"""


def test_release_records_keep_no_secret_and_a_rollback_restores_them(sample, docker, capsys,
                                                                    tmp_path):
    directory = tmp_path / "deploy"
    directory.mkdir()
    (directory / "compose.yml").write_text(SECRET_ENV)
    (directory / "compose.secretenv.yml").write_text("services: {web: {}}\n")
    env = {**sample.env("test"), "CD_TEMPLATE_DIR": str(directory)}
    for token, image in (("first-token-value", "v1"), ("second-token-value", "v2")):
        code, log = step(["deploy", "--environment", "secretenv"],
                         {**env, "CD_IMAGE": sample.images[image], "API_TOKEN": token,
                          "DB_PASS": token + "-db"}, capsys)
        assert code == 0, log
    records = docker.api.containers(all=True, filters={"label": [
        f"io.docker-cd.project={sample.project}", "io.docker-cd.environment=secretenv",
        "io.docker-cd.role=release"]})
    labels = json.dumps([r["Labels"] for r in records])
    assert len(records) == 2
    assert "first-token" not in labels and "second-token" not in labels
    assert "MODE" in labels and "plain" in labels
    code, log = step(["rollback", "--environment", "secretenv"], {"CD_PROJECT": sample.project},
                     capsys)
    assert code == 0, log
    [web] = docker.containers.list(filters={"name": f"{sample.project}-secretenv-web-1"})
    assert "API_TOKEN=first-token-value" in web.attrs["Config"]["Env"]
    assert "DATABASE_URL=postgres://app:first-token-value-db@db/app" in web.attrs["Config"]["Env"]
