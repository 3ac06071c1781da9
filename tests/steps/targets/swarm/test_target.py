"""The swarm target on a real one-node Docker swarm, through the CLI steps a pipeline runs.

One sample application (tests/steps/deploy_sample.py) goes through its life in order: deploy
to test and staging, update, a failed update, a config change, an update of the service that
holds the data, rollbacks. Each test builds on the state the one before left.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests

from steps import cli
from tests.steps.deploy_sample import Poller, build_sample
from tests.steps.swarm_support import remove_swarm_project
from tests.support import free_port

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

# Swarm cannot bind one host address: publish on the node (host mode), db too for the checks.
SWARM_OVERLAY = """\
services:
  web:
    ports: ["${WEB_PORT:?set WEB_PORT}:8080"]
    init: true  # httpd as PID 1 ignores SIGTERM: stop at once instead of after the grace period
    deploy:
      update_config: {monitor: 500ms}
  db:
    ports: ["${DB_PORT:?set DB_PORT}:80"]
    secrets: [db_password]
    init: true
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/${DB_HEALTH:-health}"]
    deploy:
      update_config: {monitor: 500ms}
      rollback_config: {monitor: 500ms}
      restart_policy: {delay: 200ms}
secrets:
  db_password: {environment: DB_PASSWORD}
"""
DB_PASSWORD = "swarm-Secret-pa55"


@pytest.fixture(scope="module")
def app(swarm, images, tmp_path_factory):
    sample = build_sample(images, tmp_path_factory.mktemp("swarm") / "deploy")
    for env in ("test", "staging"):
        (sample.directory / f"compose.{env}.yml").write_text(SWARM_OVERLAY)
    sample.db_ports = {"test": free_port(), "staging": free_port()}
    yield sample
    remove_swarm_project(swarm, sample.project)


def run(capsys, app, step: str, environment: str = "test", *args: str, image: str = "v2",
        **extra: str) -> tuple[int, str]:
    """Run a step on the swarm target; return its exit code and log."""
    env = {"DB_PASSWORD": DB_PASSWORD, **app.env(environment, image, **extra),
           "CD_DEPLOY_TARGET": "swarm", "DB_PORT": str(app.db_ports[environment])}
    code = cli.run([step, "--environment", environment, *args], env)
    return code, capsys.readouterr().err


def db_task(swarm, app, environment: str = "test") -> str:
    tasks = swarm.api.tasks(filters={"service": f"{app.project}-{environment}_db",
                                     "desired-state": "running"})
    return tasks[0]["ID"]


def db_get(app, path: str, environment: str = "test") -> str:
    return requests.get(f"http://127.0.0.1:{app.db_ports[environment]}{path}", timeout=5).text


def message_configs(swarm, app) -> list[str]:
    configs = swarm.api.configs(filters={"label": [f"io.docker-cd.project={app.project}",
                                                   "io.docker-cd.role=config"]})
    return [c["Spec"]["Name"] for c in configs
            if c["Spec"]["Name"].startswith(f"{app.project}-test_message_")]


def history(capsys, app, tmp_path) -> list[dict]:
    out = tmp_path / "releases.json"
    code, _ = run(capsys, app, "releases", "test", "--json", str(out))
    assert code == 0
    return json.loads(out.read_text())["releases"]


def test_deploys_through_the_test_and_staging_overlays(capsys, swarm, app):
    code, log = run(capsys, app, "deploy", "test", image="v1")
    assert code == 0, log
    assert app.get("test") == "version 1\n"
    assert app.get("test", "/message.txt") == "hello from the template\n"
    # depends_on: web is created only once db runs (healthy)
    assert log.index("db: 1/1 task(s) running") < log.index(f"--name {app.project}-test_web")
    network = swarm.api.inspect_network(f"{app.project}-test_default")
    assert network["Driver"] == "overlay" and network["Scope"] == "swarm"

    code, log = run(capsys, app, "verify", "test")
    assert code == 0, log  # the URL check, and the command check run inside db's task

    code, log = run(capsys, app, "deploy", "staging", image="v1")
    assert code == 0, log
    assert app.get("staging") == "version 1\n"
    # data to follow through updates and rollbacks
    container = swarm.containers.list(filters={"label": f"com.docker.swarm.task.id="
                                               f"{db_task(swarm, app)}"})[0]
    container.exec_run(["sh", "-c", "echo kept > /data/marker"])
    assert db_get(app, "/marker") == "kept\n"
    # the secret reaches the task as a file, and nothing else: not the log, not the record
    assert container.exec_run(["cat", "/run/secrets/db_password"]).output.decode() == DB_PASSWORD
    assert DB_PASSWORD not in log
    records = swarm.api.configs(filters={"label": [f"io.docker-cd.project={app.project}",
                                                   "io.docker-cd.role=release"]})
    assert records and not any(DB_PASSWORD in base64.b64decode(r["Spec"]["Data"]).decode()
                               for r in records)


def test_an_update_to_a_new_image_rolls_out_and_leaves_other_services_alone(capsys, swarm, app):
    db_before = db_task(swarm, app)
    code, log = run(capsys, app, "deploy", "test", image="v2")
    assert code == 0, log
    assert app.get("test") == "version 2\n"
    assert db_task(swarm, app) == db_before
    assert app.get("staging") == "version 1\n"
    # db (web's dependency) runs as it did: it takes the release's label only after web's update,
    # so the new web starts without waiting for it
    updates = [line for line in log.splitlines() if "docker service update" in line]
    assert updates[0].endswith("_web") and "--image" in updates[0], updates
    assert updates[-1].endswith("_db") and "--label-add" in updates[-1], updates


def test_an_unhealthy_image_is_rolled_back_and_the_previous_version_answers(
        capsys, swarm, app, tmp_path):
    app.set_message("message of the failed release\n")
    with Poller(app.url("test"), interval=0.02) as poller:
        code, log = run(capsys, app, "deploy", "test", image="bad")
    assert code == 1, log
    assert "health check failed" in log and "Error: release" in log
    assert app.get("test") == "version 2\n"
    assert poller.failed == 0 and poller.bodies == ["version 2"]
    statuses = [r["status"] for r in history(capsys, app, tmp_path)]
    assert statuses == ["failed", "succeeded", "succeeded"]
    # the failed release's config object is gone again; the running one stays
    assert len(message_configs(swarm, app)) == 1


def test_a_changed_config_file_rolls_out_as_a_new_swarm_config(capsys, swarm, app):
    app.set_message("changed message\n")
    code, log = run(capsys, app, "deploy", "test")
    assert code == 0, log
    assert app.get("test", "/message.txt") == "changed message\n"
    # one object per content; the old one stays for a rollback
    assert len(message_configs(swarm, app)) == 2


def test_data_in_a_volume_survives_an_update_of_its_service(capsys, swarm, app):
    db_before = db_task(swarm, app)
    code, log = run(capsys, app, "deploy", "test", DB_REVISION="2")
    assert code == 0, log
    assert db_task(swarm, app) != db_before
    assert db_get(app, "/marker") == "kept\n"


def test_a_failing_update_of_a_service_with_data_is_rolled_back_by_swarm(capsys, swarm, app):
    # no canary for a service holding a volume: swarm's own update, failure and rollback
    code, log = run(capsys, app, "deploy", "test", DB_REVISION="3", DB_HEALTH="missing")
    assert code == 1, log
    assert "Error: release" in log and "db: update rollback" in log
    spec = swarm.api.inspect_service(f"{app.project}-test_db")["Spec"]
    assert "DB_REVISION=2" in spec["TaskTemplate"]["ContainerSpec"]["Env"]
    assert db_get(app, "/marker") == "kept\n"
    assert app.get("test") == "version 2\n"


def test_a_failure_in_a_later_service_puts_back_the_ones_updated_before_it(capsys, swarm, app):
    # db (first in depends_on order) updates fine, then web's new image fails: db goes back too
    code, log = run(capsys, app, "deploy", "test", image="bad", DB_REVISION="4")
    assert code == 1, log
    assert "docker service rollback" in log
    spec = swarm.api.inspect_service(f"{app.project}-test_db")["Spec"]
    assert "DB_REVISION=2" in spec["TaskTemplate"]["ContainerSpec"]["Env"]
    assert db_get(app, "/marker") == "kept\n"
    assert app.get("test") == "version 2\n"


def test_a_manual_rollback_restores_the_release_before(capsys, swarm, app, tmp_path):
    db_before = db_task(swarm, app)
    code, log = run(capsys, app, "rollback", "test")
    assert code == 0, log
    assert db_task(swarm, app) != db_before  # DB_REVISION 2 -> 1
    assert app.get("test", "/message.txt") == "changed message\n"
    assert db_get(app, "/marker") == "kept\n"
    first = history(capsys, app, tmp_path)[-1]
    assert first["status"] == "succeeded" and first["kind"] == "deploy"

    code, log = run(capsys, app, "rollback", "test", "--to", first["id"])
    assert code == 0, log
    assert app.get("test") == "version 1\n"
    assert app.get("test", "/message.txt") == "hello from the template\n"
    assert db_get(app, "/marker") == "kept\n"
    latest = history(capsys, app, tmp_path)[0]
    assert latest["kind"] == "rollback" and latest["rollback_of"] == first["id"]


def test_an_unsupported_key_is_an_error_naming_it(capsys, swarm, app, tmp_path):
    broken = tmp_path / "deploy"
    broken.mkdir()
    text = (app.directory / "compose.yml").read_text()
    (broken / "compose.yml").write_text(text.replace("    stop_grace_period: 2s\n  db:",
                                                     "    privileged: true\n  db:"))
    (broken / "message.txt").write_text("x\n")
    code, log = run(capsys, app, "deploy", "test", "--template-dir", str(broken),
                    "--project", "unsupported")
    assert code == 2
    assert "services.web.privileged: the swarm target does not support this key" in log
    assert "compose.yml:" in log
    assert not swarm.api.services(filters={"label": "io.docker-cd.project=unsupported"})


@pytest.mark.parametrize(("deploy", "error"), [
    ("{monitor: 500ms, order: start-first}",
     "services.web.deploy.update_config.order: start-first cannot work here"),
    ("{monitor: 500ms}\n      replicas: 2",
     "services.web.deploy.replicas: 2 replicas cannot all run"),
], ids=["start-first", "replicas"])
def test_what_host_mode_ports_on_one_node_cannot_do_is_an_error(capsys, app, deploy, error):
    (app.directory / "compose.staging.yml").write_text(
        SWARM_OVERLAY.replace("{monitor: 500ms}", deploy, 1))
    try:
        code, log = run(capsys, app, "deploy", "staging", image="v2")
    finally:
        (app.directory / "compose.staging.yml").write_text(SWARM_OVERLAY)
    assert code == 2, log
    assert error in log
    assert app.get("staging") == "version 1\n"


def test_teardown_removes_the_stack_and_keeps_its_volumes(capsys, swarm, app):
    code, log = run(capsys, app, "deploy", "staging", image="v1")
    assert code == 0, log
    scope = {"label": [f"io.docker-cd.project={app.project}",
                       "io.docker-cd.environment=staging"]}
    code, log = run(capsys, app, "teardown", "staging")
    assert code == 0, log
    assert not swarm.api.services(filters=scope)
    assert not swarm.api.configs(filters=scope) and not swarm.api.secrets(filters=scope)
    assert not swarm.api.networks(filters=scope)
    kept = [v["Name"] for v in swarm.api.volumes(filters=scope).get("Volumes") or []]
    assert kept == [f"{app.project}-staging_data"]
    assert "Kept the volumes" in log
    code, log = run(capsys, app, "teardown", "staging", "--volumes")
    assert code == 0, log
    assert not swarm.api.volumes(filters=scope).get("Volumes")
