"""The template as swarm service specs: pure translation, no engine needed."""

from __future__ import annotations

import pytest

from steps import template
from steps.targets import LABEL_CONFIG_HASH
from steps.targets.swarm.spec import plan_stack

BASE = """
services:
  web:
    image: registry.example/web@sha256:aaaa
    command: httpd -f -p 8080
    ports: ["8080:8080"]
    environment: {GREETING: hi}
    volumes: ["data:/data"]
    configs: [{source: site, target: /www/site.txt}]
    secrets: [db_password]
    depends_on: {db: {condition: service_healthy}}
    healthcheck: {test: ["CMD", "true"], interval: 500ms, timeout: 1s, retries: 3,
                  start_period: 2s}
    restart: on-failure:3
    stop_grace_period: 2s
    init: true
    logging: {driver: json-file, options: {max-size: 1m}}
    deploy:
      replicas: 2
      update_config: {parallelism: 1, delay: 1s, order: stop-first, monitor: 3s}
      rollback_config: {order: stop-first}
      resources: {limits: {cpus: "0.5", memory: 64m}}
      restart_policy: {delay: 200ms}
  db:
    image: registry.example/db@sha256:bbbb
volumes: {data: {}}
configs: {site: {content: "hello ${WHO}"}}
secrets: {db_password: {environment: DB_PASSWORD}}
"""
ENV = {"WHO": "world", "DB_PASSWORD": "pa55word"}


def stack(text: str = BASE, env: dict | None = None, release: str = "r1"):
    tpl = template.loads({"compose.yml": text}, env or ENV)
    return tpl, plan_stack(tpl, "shop", "test", release)


def test_service_spec_carries_what_the_template_says():
    _, s = stack()
    web = s.services["web"]
    c = web["TaskTemplate"]["ContainerSpec"]
    assert web["Name"] == "shop-test_web"
    assert c["Args"] == ["httpd", "-f", "-p", "8080"] and c["Env"] == ["GREETING=hi"]
    assert c["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 500_000_000,
                                "Timeout": 1_000_000_000, "Retries": 3,
                                "StartPeriod": 2_000_000_000}
    assert c["Init"] is True and c["StopGracePeriod"] == 2_000_000_000
    assert c["Mounts"][0]["Source"] == "shop-test_data"
    assert c["Configs"][0]["File"]["Name"] == "/www/site.txt"
    assert c["Secrets"][0]["File"]["Name"] == "/run/secrets/db_password"
    assert web["Mode"] == {"Replicated": {"Replicas": 2}}
    assert web["UpdateConfig"] == {"Parallelism": 1, "FailureAction": "rollback",
                                   "Order": "stop-first", "Delay": 1_000_000_000,
                                   "Monitor": 3_000_000_000}
    assert web["TaskTemplate"]["Resources"] == {"Limits": {"NanoCPUs": 500_000_000,
                                                           "MemoryBytes": 64 * 1024 ** 2}}
    assert web["TaskTemplate"]["RestartPolicy"] == {"Condition": "on-failure", "MaxAttempts": 3,
                                                    "Delay": 200_000_000}
    assert web["TaskTemplate"]["LogDriver"] == {"Name": "json-file",
                                                "Options": {"max-size": "1m"}}
    assert web["TaskTemplate"]["Networks"] == [{"Target": "shop-test_default",
                                                "Aliases": ["web"]}]
    assert s.waves == [["db"], ["web"]]


def test_ports_are_published_in_host_mode_with_dns_round_robin():
    _, s = stack()
    assert s.services["web"]["EndpointSpec"] == {
        "Mode": "dnsrr", "Ports": [{"Protocol": "tcp", "TargetPort": 8080,
                                    "PublishedPort": 8080, "PublishMode": "host"}]}
    assert s.host_ports["web"] == [8080]


@pytest.mark.parametrize(("change", "order"), [
    ("", "start-first"),  # no host port, no data: the new task serves beside the old one
    ('ports: ["9000:80"]', "stop-first"),  # a host-mode port has one owner per node
    ("ports: [{target: 80, published: 9000, mode: ingress}]", "start-first"),
    ('volumes: ["data:/data"]', "stop-first"),  # two tasks on one data directory
    ("deploy: {placement: {max_replicas_per_node: 1}}", "stop-first"),  # maybe no room
], ids=["stateless", "host-port", "ingress-port", "volume", "max-replicas-per-node"])
def test_updates_and_rollbacks_start_the_new_task_first_where_two_can_run(change, order):
    _, s = stack(BASE.replace("image: registry.example/db@sha256:bbbb",
                              f"image: registry.example/db@sha256:bbbb\n    {change}"))
    db = s.services["db"]
    assert db["UpdateConfig"]["Order"] == order
    assert db["RollbackConfig"]["Order"] == order
    assert s.services["web"]["UpdateConfig"]["Order"] == "stop-first"  # as written


def test_tasks_run_an_init_process_unless_the_template_says_not_to():
    # busybox httpd as PID 1 ignores SIGTERM: without an init every stop waits the grace period
    _, s = stack(BASE.replace("    init: true\n", "    init: false\n"))
    assert s.services["db"]["TaskTemplate"]["ContainerSpec"]["Init"] is True
    assert s.services["web"]["TaskTemplate"]["ContainerSpec"]["Init"] is False


def test_an_explicit_ingress_port_uses_the_routing_mesh():
    text = BASE.replace('ports: ["8080:8080"]',
                        "ports: [{target: 8080, published: 8080, mode: ingress}]")
    _, s = stack(text)
    assert s.services["web"]["EndpointSpec"]["Mode"] == "vip"
    assert s.services["web"]["EndpointSpec"]["Ports"][0]["PublishMode"] == "ingress"


def test_a_changed_config_file_is_a_new_object_and_a_new_task_spec():
    _, one = stack()
    _, two = stack(env={**ENV, "WHO": "you"})
    names = {o.name for o in one.objects}, {o.name for o in two.objects}
    assert names[0] != names[1]
    assert all(n.startswith(("shop-test_site_", "shop-test_db_password_")) for n in names[0])
    assert (one.services["web"]["Labels"][LABEL_CONFIG_HASH]
            != two.services["web"]["Labels"][LABEL_CONFIG_HASH])
    assert (one.services["db"]["Labels"][LABEL_CONFIG_HASH]
            == two.services["db"]["Labels"][LABEL_CONFIG_HASH])


def test_a_new_release_of_the_same_template_restarts_nothing():
    _, one = stack(release="r1")
    _, two = stack(release="r2")
    assert one.services["web"]["TaskTemplate"] == two.services["web"]["TaskTemplate"]
    assert two.services["web"]["Labels"]["io.docker-cd.release"] == "r2"


@pytest.mark.parametrize(("change", "names"), [
    ('ports: ["127.0.0.1:8080:8080"]', "services.web.ports[0].host_ip"),
    ('ports: ["8080-8081:8080"]', "services.web.ports[0].published"),
    ("restart: sometimes", "services.web.restart"),
    ("deploy: {mode: daemon}", "services.web.deploy.mode"),
    ("deploy: {restart_policy: {delay: soon}}", "services.web.deploy.restart_policy.delay"),
])
def test_what_swarm_cannot_do_is_an_error_naming_the_key_and_line(change, names):
    key = change.split(":")[0]
    text = BASE.replace('ports: ["8080:8080"]', "" if key != "ports" else change)
    if key == "restart":
        text = text.replace("restart: on-failure:3", change)
    if key == "deploy":
        text = text.replace("  db:\n    image: registry.example/db@sha256:bbbb",
                            f"  db:\n    image: registry.example/db@sha256:bbbb\n    {change}")
        names = names.replace("web", "db")
    with pytest.raises(template.TemplateError) as e:
        stack(text)
    assert names in e.value.message and "compose.yml:" in e.value.message


def test_a_named_config_is_refused_as_configs_are_named_by_hash():
    with pytest.raises(template.TemplateError, match=r"configs\.site\.name: .*content hash"):
        stack(BASE.replace('site: {content: "hello ${WHO}"}',
                           'site: {content: "hello", name: my-site}'))


def test_a_non_overlay_network_is_refused():
    text = BASE + "networks: {front: {driver: bridge}}\n"
    with pytest.raises(template.TemplateError, match=r"networks\.front\.driver.*overlay"):
        stack(text)
