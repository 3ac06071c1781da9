"""The swarm objects of a release, their names, and the keys swarm honours: pure."""

from __future__ import annotations

import pytest

from steps import template
from steps.targets.swarm.stack import (
    SUPPORTED,
    check_host_ports,
    object_name,
    release_object_name,
)
from tests.steps.targets.swarm.test_spec import BASE, ENV, stack


@pytest.mark.parametrize(("key", "value"), [
    ("privileged", "true"), ("cap_add", "[CHOWN]"), ("container_name", "web"),
    ("network_mode", "host"), ("build", "."),
])
def test_unsupported_keys_are_named(key, value):
    text = BASE.replace("    init: true", f"    init: true\n    {key}: {value}")
    tpl = template.loads({"compose.yml": text}, ENV)
    with pytest.raises(template.TemplateError) as e:
        tpl.check_supported("swarm", SUPPORTED)
    assert f"services.web.{key}" in e.value.message
    assert "swarm target does not support" in e.value.message


def test_the_sample_keys_are_all_supported():
    tpl, _ = stack()
    tpl.check_supported("swarm", SUPPORTED)


def test_object_names_keep_their_hash_and_release_id_within_swarm_limits():
    stack = "a-very-long-project-name-for-a-very-long-team-name-production"
    config = object_name(stack, "message", "sha256:" + "ab" * 32)
    release = release_object_name(stack, "20261126T171530123Z-3f2a")
    assert len(config) <= 64 and config.endswith("_abababababab")
    assert len(release) <= 64 and release.endswith("_release_20261126T171530123Z-3f2a")


@pytest.mark.parametrize(("deploy", "nodes", "error"), [
    ("replicas: 2", 1, "services.web.deploy.replicas: 2 replicas cannot all run"),
    ("update_config: {order: start-first}", 1,
     "services.web.deploy.update_config.order: start-first cannot work here"),
    ("rollback_config: {order: start-first}", 1,
     "services.web.deploy.rollback_config.order: start-first cannot work here"),
    ("update_config: {order: start-first}", 2, None),
    ("replicas: 2", 2, None),
])
def test_host_mode_ports_limit_replicas_and_start_first_by_nodes(deploy, nodes, error):
    text = ("services:\n  web:\n    image: web@sha256:aaaa\n    ports: ['8080:80']\n"
            f"    deploy:\n      {deploy}\n")
    tpl, s = stack(text)
    if error is None:
        check_host_ports(s, tpl, nodes)
        return
    with pytest.raises(template.TemplateError) as e:
        check_host_ports(s, tpl, nodes)
    assert error in e.value.message and "compose.yml:6:" in e.value.message
