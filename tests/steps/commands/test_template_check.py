"""`docker-cd template check`: every environment's template checked early, problems at once."""

from __future__ import annotations

import json

from steps import cli
from tests.steps.template.test_template import write

BASE = """\
services:
  web:
    image: ${CD_IMAGE:?set CD_IMAGE}
    environment: {DB_PASSWORD: '${DB_PASSWORD:?a masked, environment-scoped variable}'}
    ports: ["127.0.0.1:${WEB_PORT:?}:8080"]
"""


def check(tmp_path, capsys, *args, environ=None):
    code = cli.run(["template", "check", "--template-dir", str(tmp_path), *args], environ or {})
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def test_every_environment_is_checked_without_its_variables(tmp_path, capsys):
    write(tmp_path, {"compose.yml": BASE, "compose.test.yml": "services: {web: {init: true}}\n",
                     "compose.production.yml": "services: {web: {deploy: {replicas: 1}}}\n"})
    code, log = check(tmp_path, capsys, "--json", str(tmp_path / "check.json"))
    assert code == 0, log
    assert "production: ok (" in log and "test: ok (" in log
    assert log.count("DB_PASSWORD is not set") == 1  # said once, not per environment
    hashes = json.loads((tmp_path / "check.json").read_text())["environments"]
    assert set(hashes) == {"production", "test"}
    assert all(h["template_hash"].startswith("sha256:") for h in hashes.values())


def test_problems_of_every_environment_at_once_and_each_only_once(tmp_path, capsys):
    write(tmp_path, {"compose.yml": BASE + "    restart: sometimes\n",
                     "compose.test.yml": "services: {web: {helthcheck: {}}}\n",
                     "compose.production.yml": "services: {web: {deploy: {replicas: two}}}\n"})
    code, log = check(tmp_path, capsys, "--environments", "test,production,staging")
    assert code == 2
    assert "Error: 3 problems in the template:" in log
    assert log.count("compose.yml:6: services.web.restart") == 1
    assert "compose.test.yml:1: services.web.helthcheck: unknown key; did you mean " \
           "'healthcheck'?" in log
    assert "compose.production.yml:1: services.web.deploy.replicas: expected a whole number" in log
    assert "staging has no compose.staging.yml" in log


def test_a_swarm_template_is_checked_for_swarm(tmp_path, capsys):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n    privileged: true\n",
                     "compose.test.yml": "services: {web: {}}\n"})
    code, log = check(tmp_path, capsys, "--target", "swarm")
    assert code == 2
    assert "services.web.privileged: the swarm target does not support this key" in log
