"""The application template: Compose merge rules, interpolation, errors, redaction."""

from __future__ import annotations

import pytest

from steps.template import (
    REDACTED,
    InterpolationError,
    TemplateError,
    interpolate,
    load,
    loads,
    parse_duration,
    parse_size,
)

BASE = """
services:
  web:
    image: app:1
    command: ["httpd", "-f"]
    environment: [A=1, B=2]
    labels: {team: shop}
    dns: [1.1.1.1]
    ports: ["8080:80", "9090:90"]
    volumes: ["data:/data", "logs:/logs"]
    depends_on: [db]
    healthcheck:
      test: ["CMD", "true"]
      interval: 5s
  db:
    image: db:1
volumes:
  data: {}
  logs: {}
"""


def web(overlay: str, environ=None) -> dict:
    template = loads({"compose.yml": BASE, "compose.test.yml": overlay}, environ or {})
    return template.model["services"]["web"]


MERGES = [
    # (overlay, key, expected) — the rules of `docker compose -f base -f overlay`
    ("services: {web: {image: app:2}}", "image", "app:2"),
    ("services: {web: {command: [sh]}}", "command", ["sh"]),
    ("services: {web: {command: httpd -v -p 1}}", "command", ["httpd", "-v", "-p", "1"]),
    ("services: {web: {environment: {B: 3, C: 4}}}", "environment",
     {"A": "1", "B": "3", "C": "4"}),
    ("services: {web: {environment: [C=5]}}", "environment", {"A": "1", "B": "2", "C": "5"}),
    ("services: {web: {labels: [tier=front]}}", "labels", {"team": "shop", "tier": "front"}),
    ("services: {web: {dns: 8.8.8.8}}", "dns", ["1.1.1.1", "8.8.8.8"]),
    ("services: {web: {dns: !reset []}}", "dns", None),
    ("services: {web: {ports: ['7070:80']}}", "ports", [
        {"target": 80, "published": "8080", "host_ip": None, "protocol": "tcp", "mode": "ingress"},
        {"target": 90, "published": "9090", "host_ip": None, "protocol": "tcp", "mode": "ingress"},
        {"target": 80, "published": "7070", "host_ip": None, "protocol": "tcp", "mode": "ingress"},
    ]),
    ("services: {web: {ports: !override ['127.0.0.1:7070:80/udp']}}", "ports", [
        {"target": 80, "published": "7070", "host_ip": "127.0.0.1", "protocol": "udp",
         "mode": "ingress"}]),
    ("services: {web: {ports: !reset []}}", "ports", []),
    ("services: {web: {volumes: ['logs2:/logs']}}\nvolumes: {logs2: {}}", "volumes", [
        {"type": "volume", "source": "data", "target": "/data", "read_only": False},
        {"type": "volume", "source": "logs2", "target": "/logs", "read_only": False}]),
    ("services: {web: {healthcheck: {test: [CMD, 'false']}}}", "healthcheck",
     {"test": ["CMD", "false"], "interval": 5.0}),
    ("services: {web: {healthcheck: {test: wget -q localhost}}}", "healthcheck",
     {"test": ["CMD-SHELL", "wget -q localhost"], "interval": 5.0}),
    ("services: {web: {depends_on: {db: {condition: service_healthy}}}}", "depends_on",
     {"db": {"condition": "service_healthy", "required": True}}),
    ("services: {web: {stop_grace_period: 1m30s}}", "stop_grace_period", 90.0),
    ("services: {web: {deploy: {resources: {limits: {memory: 256m, cpus: '0.5'}}}}}",
     "deploy", {"resources": {"limits": {"memory": 256 * 1024 ** 2, "cpus": 0.5}}}),
]


@pytest.mark.parametrize(("overlay", "key", "expected"), MERGES)
def test_overlay_merges_like_docker_compose(overlay, key, expected):
    assert web(overlay).get(key) == expected


ENV = {"SET": "value", "EMPTY": ""}
INTERPOLATIONS = [
    ("${SET}", "value"), ("$SET", "value"), ("a-${SET}-b", "a-value-b"), ("$$SET", "$SET"),
    ("$${SET}", "${SET}"), ("${UNSET}", ""), ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""), ("${UNSET-dflt}", "dflt"), ("${SET:+alt}", "alt"),
    ("${EMPTY:+alt}", ""), ("${EMPTY+alt}", "alt"), ("${UNSET:-${SET}}", "value"),
    ("${UNSET:-a ${UNSET2:-b}}", "a b"), ("${SET:?boom}", "value"),
]


@pytest.mark.parametrize(("text", "expected"), INTERPOLATIONS)
def test_interpolation(text, expected):
    assert interpolate(text, ENV)[0] == expected


@pytest.mark.parametrize(("text", "message"), [
    ("${UNSET:?set it in CI}", "required variable UNSET is not set: set it in CI"),
    ("${EMPTY:?no empty}", "required variable EMPTY is empty: no empty"),
    ("${SET", "invalid interpolation format for ${SET...}"),
    ("${SET:-x", "missing '}'"),
    ("a $ b", "lone '$'"),
    ("${1BAD}", "invalid variable name"),
])
def test_interpolation_errors(text, message):
    with pytest.raises(InterpolationError) as e:
        interpolate(text, ENV)
    assert message in str(e.value)


def write(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_missing_required_variable_names_file_and_line(tmp_path):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: ${CD_IMAGE:?set CD_IMAGE}\n"})
    with pytest.raises(TemplateError) as e:
        load(tmp_path, "test", {})
    assert str(e.value).endswith("compose.yml:3: services.web.image: required variable "
                                 "CD_IMAGE is not set: set CD_IMAGE")


def test_unsupported_key_names_key_path_and_line_in_the_overlay(tmp_path):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n",
                     "compose.staging.yml": "services:\n  web:\n    privileged: true\n"})
    template = load(tmp_path, "staging", {})
    with pytest.raises(TemplateError) as e:
        template.check_supported("docker", ("services.*.image",))
    assert "compose.staging.yml:3: services.web.privileged: the docker target does not " \
           "support this key" in str(e.value)


def test_extension_keys_are_always_allowed(tmp_path):
    template = loads({"compose.yml": "x-common: &c {a: 1}\nservices:\n  web:\n    image: a\n"
                      "    x-note: hi\n"}, {})
    template.check_supported("docker", ("services.*.image",))


@pytest.mark.parametrize(("text", "message"), [
    ("services:\n  web:\n    image: a\n    depends_on: [db]\n",
     "compose.yml:4: services.web.depends_on.db: depends on 'db', which is not a service here"),
    ("services:\n  a: {image: a, depends_on: [b]}\n  b: {image: b, depends_on: [a]}\n",
     "dependency cycle: a -> b -> a"),
    ("services:\n  web:\n    image: a\n    volumes: ['data:/d']\n",
     "compose.yml:4: services.web.volumes[0]: volume 'data' is not declared"),
    ("services:\n  web:\n    image: a\n    ports: ['80:80:80:80']\n",
     "compose.yml:4: services.web.ports[0]: expected [HOST_IP:][PUBLISHED:]TARGET"),
    ("services:\n  web:\n    command: x\n", "compose.yml:2: services.web: every service needs "
     "an image"),
    ("services:\n  web:\n    image: a\n    image: b\n", "compose.yml:4: services.web.image: key "
     "given twice"),
    ("services:\n  web: [\n", "compose.yml:"),
    ("services:\n  web:\n    image: a\n    depends_on:\n      web2: {condition: "
     "service_completed_successfully}\n  web2: {image: b}\n",
     "condition 'service_completed_successfully' is not supported"),
])
def test_template_errors_name_file_and_line(text, message):
    with pytest.raises(TemplateError) as e:
        loads({"compose.yml": text}, {})
    assert message in str(e.value)


def test_secrets_are_redacted_when_rendered():
    template = loads({"compose.yml": """
services:
  web:
    image: a
    environment:
      DB_PASSWORD: ${DB_PASSWORD}
      API_TOKEN: literal-token-value
      URL: postgres://u:${PG_SECRET}@db/x
      PLAIN: ${PLAIN}
secrets:
  key: {environment: DEPLOY_KEY}
"""}, {"DB_PASSWORD": "hunter2hunter2", "PG_SECRET": "pg-s3cret", "PLAIN": "visible",
       "DEPLOY_KEY": "k3y-material"})
    rendered = template.rendered()
    for secret in ("hunter2hunter2", "literal-token-value", "pg-s3cret", "k3y-material"):
        assert secret not in rendered
    assert rendered.count(REDACTED) == 3
    assert "visible" in rendered
    assert template.secrets == {"key": b"k3y-material"}
    assert template.config_hashes()["secret:key"].startswith("sha256:")


def test_configs_read_from_files_and_hash_follows_content(tmp_path):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n    configs: [site]\n"
                     "configs:\n  site: {file: ./site.conf}\n", "site.conf": "v1\n"})
    first = load(tmp_path, "test", {})
    assert first.configs == {"site": b"v1\n"}
    assert first.model["services"]["web"]["configs"] == [
        {"source": "site", "target": "/site", "uid": None, "gid": None, "mode": None}]
    (tmp_path / "site.conf").write_text("v2\n")
    assert load(tmp_path, "test", {}).config_hashes() != first.config_hashes()


def test_env_file_values_come_before_environment(tmp_path):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n    env_file: app.env\n"
                     "    environment: {B: from-template}\n",
                     "app.env": "# comment\nA=from-file\nB='file'\n"})
    env = load(tmp_path, "test", {}).model["services"]["web"]["environment"]
    assert env == {"A": "from-file", "B": "from-template"}


def test_verify_checks_from_the_extension():
    template = loads({"compose.yml": """
services: {web: {image: a}}
x-docker-cd:
  verify:
    - {name: home, url: "http://127.0.0.1:${PORT}/", body: hello, timeout: 2s, retries: 5}
    - {command: "sh -c 'exit 0'", service: web}
"""}, {"PORT": "8080"})
    home, cmd = template.checks
    assert (home.url, home.body, home.status, home.timeout, home.retries) == (
        "http://127.0.0.1:8080/", "hello", 200, 2.0, 5)
    assert (cmd.command, cmd.service) == (("sh", "-c", "exit 0"), "web")


@pytest.mark.parametrize(("value", "seconds"), [
    ("10s", 10.0), ("250ms", 0.25), ("1m30s", 90.0), ("1h", 3600.0), (5, 5.0)])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(("value", "size"), [
    ("512m", 512 * 1024 ** 2), ("1g", 1024 ** 3), ("100k", 102400), (42, 42), ("1.5g", 1610612736)])
def test_parse_size(value, size):
    assert parse_size(value) == size
