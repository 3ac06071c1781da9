"""The docker target's translation of a normalised service into Engine API settings (pure)."""

from __future__ import annotations

import pytest

from steps.targets.docker.spec import config_hash, create_kwargs, file_volume, holder_kwargs
from steps.template import loads

TEMPLATE = """
services:
  web:
    image: app
    command: httpd -f
    environment: {B: "2", A: "1"}
    ports: ["127.0.0.1:8080:80"]
    restart: on-failure:3
    stop_grace_period: 3s
    healthcheck: {test: wget -q localhost, interval: 250ms, retries: 2}
    logging: {driver: json-file, options: {max-size: 10m}}
    deploy: {resources: {limits: {cpus: "0.5", memory: 64m, pids: 100}}}
    extra_hosts: ["db.local:10.0.0.2"]
"""


def kwargs(**over):
    spec = loads({"compose.yml": TEMPLATE}, {}).model["services"]["web"]
    spec.update(over)
    return create_kwargs("shop", "staging", "web", spec, "sha256:img", [],
                         "shop-staging_default", ["web"], with_ports=True)


def test_a_service_becomes_engine_settings():
    k = kwargs()
    host = k["host_config"]
    assert k["command"] == ["httpd", "-f"]
    assert k["environment"] == ["A=1", "B=2"]
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert (host["NanoCpus"], host["Memory"], host["PidsLimit"]) == (
        500_000_000, 64 * 1024 ** 2, 100)
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m"}}
    assert host["ExtraHosts"] == ["db.local:10.0.0.2"]
    assert host["Init"] is True
    assert k["stop_timeout"] == 3
    assert k["healthcheck"] == {"test": ["CMD-SHELL", "wget -q localhost"],
                                "interval": 250_000_000, "retries": 2}
    assert k["labels"]["io.docker-cd.service"] == "web"


def test_joining_a_holder_leaves_ports_and_names_to_it():
    spec = loads({"compose.yml": TEMPLATE}, {}).model["services"]["web"]
    k = create_kwargs("shop", "staging", "web", spec, "sha256:img", [], "net", ["web"],
                      with_ports=True, holder="abc")
    assert k["host_config"]["NetworkMode"] == "container:abc"
    assert "PortBindings" not in k["host_config"] and "networking_config" not in k
    holder = holder_kwargs("shop", "staging", "web", spec, "pause", "net", ["web"])
    assert holder["host_config"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}


@pytest.mark.parametrize(("change", "same"), [
    ({}, True),
    ({"environment": {"A": "1", "B": "3"}}, False),
    ({"image": "other"}, True),  # the image id, not the reference, is what counts
    ({"stop_grace_period": 4.0}, False),
])
def test_config_hash_changes_only_with_what_runs(change, same):
    assert (config_hash(kwargs(), {}) == config_hash(kwargs(**change), {})) is same


def test_file_volumes_are_named_by_content_and_ownership():
    a = file_volume("shop", "staging", "configs", "site", "sha256:1", {"mode": None})
    assert a.startswith("shop-staging_config-site-")
    assert a != file_volume("shop", "staging", "configs", "site", "sha256:2", {"mode": None})
    assert a != file_volume("shop", "staging", "configs", "site", "sha256:1", {"mode": 0o400})
