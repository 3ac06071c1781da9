"""deploy / verify / releases / rollback on the real Docker engine with the two-service sample.

The tests run in order against one project (unique name, removed at the end): each builds on
the release the previous one left, as a team's environments do.
"""

from __future__ import annotations

import json

import pytest
import requests

from steps import cli
from tests.steps.deploy_sample import Poller, build_sample, remove_project
from tests.support import free_port

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def sample(docker, images, tmp_path_factory):
    built = build_sample(images, tmp_path_factory.mktemp("app") / "deploy")
    yield built
    remove_project(docker, built.project)


def step(argv, env, capsys):
    code = cli.run(argv, env)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def releases(sample, env_name, capsys, tmp_path):
    out = tmp_path / "releases.json"
    code, _ = step(["releases", "--environment", env_name, "--json", str(out)],
                   sample.env(env_name), capsys)
    assert code == 0
    return json.loads(out.read_text())["releases"]


def db_exec(docker, sample, env_name, command):
    [db] = docker.containers.list(filters={"name": f"{sample.project}-{env_name}-db-1"})
    return db.exec_run(command).output.decode().strip()


def test_first_deploy_to_test_and_staging(sample, docker, capsys, tmp_path):
    for env_name in ("test", "staging"):
        dotenv = tmp_path / f"{env_name}.env"
        code, log = step(["deploy", "--environment", env_name, "--dotenv", str(dotenv)],
                         sample.env(env_name), capsys)
        assert code == 0, log
        assert sample.get(env_name) == "version 1\n"
        message = "hello from staging\n" if env_name == "staging" else "hello from the template\n"
        assert sample.get(env_name, "/message.txt") == message  # each overlay's own config
        assert dotenv.read_text().startswith("CD_RECORD_ID=")
    # db started first and web waited for it to be healthy
    assert log.index("db: 0 -> 1") < log.index("web: 0 -> 1")
    db_exec(docker, sample, "test", ["sh", "-c", "echo precious > /data/keep.txt"])
    [release] = releases(sample, "test", capsys, tmp_path)
    assert release["status"] == "succeeded"
    assert set(release["images"]) == {"web", "db"}
    assert release["images"]["web"].startswith("sha256:")  # never pushed: the image id


def test_update_to_a_new_image_keeps_the_data(sample, docker, capsys, tmp_path):
    with Poller(sample.url("test")) as poll:
        code, log = step(["deploy", "--environment", "test"],
                         sample.env("test", "v2", DB_REVISION="2"), capsys)
    assert code == 0, log
    assert sample.get("test") == "version 2\n"
    assert poll.bodies[0] == "version 1" and poll.bodies[-1] == "version 2"
    assert db_exec(docker, sample, "test", ["cat", "/data/keep.txt"]) == "precious"
    [web] = docker.containers.list(filters={"name": f"{sample.project}-test-web-1"})
    [db] = docker.containers.list(filters={"name": f"{sample.project}-test-db-1"})
    assert db.labels["io.docker-cd.release"] == web.labels["io.docker-cd.release"]  # replaced
    answer = web.exec_run(["wget", "-q", "-O-", "http://db/health"]).output.decode()
    assert answer == "ok\n"  # the service name leads to the new db container
    assert sample.get("staging") == "version 1\n"  # other environments untouched


def test_a_release_that_fails_its_health_check_is_rolled_back(sample, capsys, tmp_path):
    with Poller(sample.url("test")) as poll:
        code, log = step(["deploy", "--environment", "test"], sample.env("test", "bad"), capsys)
    assert code == 1
    assert "is unhealthy" in log and "failed and was rolled back" in log
    assert poll.failed == 0 and poll.bodies == ["version 2"]  # the old release never stopped
    assert sample.get("test") == "version 2\n"
    statuses = [r["status"] for r in releases(sample, "test", capsys, tmp_path)]
    assert statuses == ["failed", "succeeded", "succeeded"]


def test_config_file_change_rolls_out(sample, capsys):
    sample.set_message("new message\n")
    code, log = step(["deploy", "--environment", "test"],
                     sample.env("test", "v2", DB_REVISION="2"), capsys)
    assert code == 0, log
    assert sample.get("test", "/message.txt") == "new message\n"
    assert "db: unchanged" in log


def test_verify_runs_the_template_checks(sample, capsys, tmp_path):
    out = tmp_path / "verify.json"
    code, log = step(["verify", "--environment", "test", "--json", str(out)],
                     sample.env("test"), capsys)
    assert code == 0, log
    assert [c["passed"] for c in json.loads(out.read_text())["checks"]] == [True, True]


def test_manual_rollback_goes_to_the_last_good_release(sample, docker, capsys, tmp_path):
    code, log = step(["rollback", "--environment", "test"], {"CD_PROJECT": sample.project},
                     capsys)
    assert code == 0, log
    assert sample.get("test") == "version 2\n"
    assert sample.get("test", "/message.txt") == "hello from the template\n"  # the old config
    code, log = step(["rollback", "--environment", "test"], {"CD_PROJECT": sample.project},
                     capsys)
    assert code == 0, log
    assert sample.get("test") == "version 1\n"  # skips the release the first rollback left
    assert db_exec(docker, sample, "test", ["cat", "/data/keep.txt"]) == "precious"
    history = releases(sample, "test", capsys, tmp_path)
    assert [r["kind"] for r in history[:2]] == ["rollback", "rollback"]
    assert history[0]["rollback_of"] == history[-1]["id"]  # the very first release


def test_rollback_to_a_named_release_and_never_to_a_failed_one(sample, capsys, tmp_path):
    history = releases(sample, "test", capsys, tmp_path)
    failed = next(r for r in history if r["status"] == "failed")
    code, log = step(["rollback", "--environment", "test", "--to", failed["id"]],
                     {"CD_PROJECT": sample.project}, capsys)
    assert code == 1
    assert "a failed release is never a rollback target" in log
    v2 = next(r for r in history if r["status"] == "rolled-back")
    code, log = step(["rollback", "--environment", "test", "--to", v2["id"]],
                     {"CD_PROJECT": sample.project}, capsys)
    assert code == 0, log
    assert sample.get("test") == "version 2\n"


def test_verify_fails_naming_the_check(sample, docker, capsys):
    docker.api.stop(f"{sample.project}-test-web-1")
    try:
        code, log = step(["verify", "--environment", "test"], sample.env("test"), capsys)
    finally:
        docker.api.start(f"{sample.project}-test-web-1")
    assert code == 1
    assert "FAIL home page" in log and "1 of 2 checks failed" in log


def test_unsupported_key_and_missing_variable_fail_before_touching_the_engine(
        sample, capsys, tmp_path):
    bad = tmp_path / "deploy"
    bad.mkdir()
    (bad / "compose.yml").write_text("services:\n  web:\n    image: ${CD_IMAGE}\n"
                                     "    privileged: true\n")
    code, log = step(["deploy", "--environment", "test", "--template-dir", str(bad)],
                     sample.env("test"), capsys)
    assert code == 2
    assert "compose.yml:4: services.web.privileged: the docker target does not support this " \
           "key" in log
    env = sample.env("test")
    del env["WEB_PORT"]
    code, log = step(["deploy", "--environment", "test"], env, capsys)
    assert code == 2
    assert "compose.test.yml:3: services.web.ports[0]: required variable WEB_PORT is not set: " \
           "set WEB_PORT" in log


SECRET_TEMPLATE = """\
services:
  files:
    image: ${CD_IMAGE}
    command: ["httpd", "-f", "-p", "8080", "-h", "/run/secrets"]
    ports: ["127.0.0.1:${FILES_PORT}:8080"]
    secrets: [api_key]
    labels: {team: shop}
    restart: unless-stopped
    logging: {driver: json-file, options: {max-size: 1m}}
    stop_grace_period: 1s
    deploy: {resources: {limits: {memory: 32m, pids: 50}}}
secrets:
  api_key: {environment: API_KEY}
"""


def test_secrets_from_ci_variables_and_container_settings(sample, docker, capsys, tmp_path):
    directory = tmp_path / "deploy"
    directory.mkdir()
    (directory / "compose.yml").write_text(SECRET_TEMPLATE)
    port = free_port()
    env = {**sample.env("test"), "CD_TEMPLATE_DIR": str(directory), "FILES_PORT": str(port),
           "API_KEY": "first-s3cret-key", "CD_NEW_ENVIRONMENT": "true"}
    out = tmp_path / "deploy.json"
    code, log = step(["deploy", "--environment", "secrets", "--json", str(out)], env, capsys)
    assert code == 0, log
    url = f"http://127.0.0.1:{port}/api_key"
    assert requests.get(url, timeout=5).text == "first-s3cret-key"
    assert "first-s3cret-key" not in log and "first-s3cret-key" not in out.read_text()
    container = docker.containers.get(f"{sample.project}-secrets-files-1")
    host = container.attrs["HostConfig"]
    assert (host["Memory"], host["PidsLimit"]) == (32 * 1024 ** 2, 50)
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert container.labels["team"] == "shop"
    assert container.attrs["Config"]["StopTimeout"] == 1
    [mount] = [m for m in container.attrs["Mounts"] if m["Destination"] == "/run/secrets/api_key"]
    assert mount["RW"] is False
    code, log = step(["deploy", "--environment", "secrets"], {**env, "API_KEY": "rotated-key"},
                     capsys)
    assert code == 0, log
    assert requests.get(url, timeout=5).text == "rotated-key"  # a changed secret rolls out


def test_a_deploy_clears_what_an_interrupted_one_left(sample, docker, capsys):
    labels = {"io.docker-cd.project": sample.project, "io.docker-cd.environment": "test",
              "io.docker-cd.service": "web"}
    leftovers = [
        docker.api.create_container(sample.db_image, name=f"{sample.project}-test-web-1-dead-check",
                                    entrypoint=["/x"],
                                    labels={**labels, "io.docker-cd.role": "candidate"})["Id"],
        docker.api.create_container(sample.db_image, name=f"{sample.project}-test-web-1-dead",
                                    entrypoint=["/x"],
                                    labels={**labels, "io.docker-cd.role": "service"})["Id"]]
    code, log = step(["deploy", "--environment", "test"],
                     sample.env("test", "v2", DB_REVISION="2"), capsys)
    assert code == 0, log
    assert f"removing {sample.project}-test-web-1-dead left by an interrupted deploy" in log
    for cid in leftovers:
        assert not docker.containers.list(all=True, filters={"id": cid})
    assert sample.get("test") == "version 2\n"


def test_one_rollout_per_environment_at_a_time(sample, docker, capsys):
    lock = docker.api.create_container(
        sample.db_image, name=f"{sample.project}-test-deploy-lock", entrypoint=["/x"],
        labels={"io.docker-cd.project": sample.project, "io.docker-cd.release": "r-other"})
    try:
        code, log = step(["deploy", "--environment", "test"], sample.env("test", "v1"), capsys)
    finally:
        docker.api.remove_container(lock["Id"], force=True)
    assert code == 3
    assert "another deploy or rollback of test is running (release r-other" in log
    assert sample.get("test") == "version 2\n"  # untouched


def test_stop_first_service_that_fails_gets_its_old_container_back(sample, docker, capsys,
                                                                   tmp_path):
    directory = tmp_path / "deploy"
    directory.mkdir()
    for name in ("compose.yml", "compose.test.yml", "message.txt"):
        (directory / name).write_text((sample.directory / name).read_text())
    (directory / "compose.stopfirst.yml").write_text(
        (sample.directory / "compose.test.yml").read_text()
        + "  db:\n    deploy: {update_config: {order: stop-first}}\n"
        + "    healthcheck: {test: [CMD, wget, -q, -O, /dev/null, "
          "'http://127.0.0.1/${DB_HEALTH_PATH:-health}']}\n")
    env = {**sample.env("test", "v2"), "CD_TEMPLATE_DIR": str(directory),
           "WEB_PORT": str(free_port())}
    code, log = step(["deploy", "--environment", "stopfirst"], env, capsys)
    assert code == 0, log
    db_exec(docker, sample, "stopfirst", ["sh", "-c", "echo kept > /data/kept.txt"])
    code, log = step(["deploy", "--environment", "stopfirst"],
                     {**env, "DB_HEALTH_PATH": "missing", "DB_REVISION": "9"}, capsys)
    assert code == 1
    assert "db: 1 -> 1 container(s), stop-first" in log and "failed and was rolled back" in log
    assert db_exec(docker, sample, "stopfirst", ["cat", "/data/kept.txt"]) == "kept"
    [db] = docker.containers.list(filters={"name": f"{sample.project}-stopfirst-db-1"})
    assert db.attrs["Config"]["Env"].count("DB_REVISION=1") == 1  # the old container is back


def test_a_service_dropped_from_the_template_goes_but_its_volume_stays(sample, docker, capsys,
                                                                       tmp_path):
    directory = tmp_path / "deploy"
    directory.mkdir()
    (directory / "compose.yml").write_text(
        "services:\n  web:\n    image: ${CD_IMAGE}\n    healthcheck: {test: [CMD, 'true'], "
        "interval: 100ms}\nvolumes:\n  data: {}\n")
    env = {**sample.env("test", "v1"), "CD_TEMPLATE_DIR": str(directory),
           "CD_NEW_ENVIRONMENT": "true"}
    code, log = step(["deploy", "--environment", "stopfirst"], env, capsys)
    assert code == 0, log
    assert "Removing services no longer in the template: db" in log
    assert not docker.containers.list(all=True,
                                      filters={"name": f"{sample.project}-stopfirst-db-1"})
    # web no longer publishes a port: its network holder went with the old container
    assert not docker.containers.list(all=True,
                                      filters={"name": f"{sample.project}-stopfirst-web-net"})
    volume = docker.volumes.get(f"{sample.project}-stopfirst_data")
    assert volume.attrs["Labels"]["io.docker-cd.project"] == sample.project
