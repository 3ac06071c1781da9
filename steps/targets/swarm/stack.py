"""A swarm release as objects: the stack (networks, configs, secrets, services, start order),
the names of its objects, and the keys of the template the swarm target honours. Pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from steps.template import Template

# steps.template (its YAML and schema) loads only when a template is planned: a rollback
# restores recorded specs and should not pay for it.

# Keys of the merged template (as written) the swarm target honours; see Template.check_supported.
SUPPORTED: tuple[str, ...] = (
    "name", "version", "services", "services.*",
    "services.*.image", "services.*.command", "services.*.command.*",
    "services.*.entrypoint", "services.*.entrypoint.*",
    "services.*.environment", "services.*.environment.*",
    "services.*.env_file", "services.*.env_file.**",
    "services.*.ports", "services.*.ports.*", "services.*.ports.*.target",
    "services.*.ports.*.published", "services.*.ports.*.protocol", "services.*.ports.*.mode",
    "services.*.volumes", "services.*.volumes.*", "services.*.volumes.*.type",
    "services.*.volumes.*.source", "services.*.volumes.*.target",
    "services.*.volumes.*.read_only",
    "services.*.configs", "services.*.configs.*", "services.*.configs.*.source",
    "services.*.configs.*.target", "services.*.configs.*.uid", "services.*.configs.*.gid",
    "services.*.configs.*.mode",
    "services.*.secrets", "services.*.secrets.*", "services.*.secrets.*.source",
    "services.*.secrets.*.target", "services.*.secrets.*.uid", "services.*.secrets.*.gid",
    "services.*.secrets.*.mode",
    "services.*.depends_on", "services.*.depends_on.*", "services.*.depends_on.*.condition",
    "services.*.depends_on.*.required",
    "services.*.healthcheck", "services.*.healthcheck.test", "services.*.healthcheck.test.*",
    "services.*.healthcheck.interval", "services.*.healthcheck.timeout",
    "services.*.healthcheck.retries", "services.*.healthcheck.start_period",
    "services.*.healthcheck.disable",
    "services.*.labels", "services.*.labels.*",
    "services.*.logging", "services.*.logging.driver", "services.*.logging.options",
    "services.*.logging.options.*",
    "services.*.restart",
    "services.*.networks", "services.*.networks.*", "services.*.networks.*.aliases",
    "services.*.networks.*.aliases.*",
    "services.*.stop_grace_period", "services.*.stop_signal", "services.*.init",
    "services.*.user", "services.*.working_dir", "services.*.hostname",
    "services.*.read_only", "services.*.tty", "services.*.stdin_open",
    "services.*.extra_hosts", "services.*.extra_hosts.*",
    "services.*.deploy", "services.*.deploy.mode", "services.*.deploy.replicas",
    "services.*.deploy.labels", "services.*.deploy.labels.*",
    "services.*.deploy.endpoint_mode",
    "services.*.deploy.update_config", "services.*.deploy.rollback_config",
    *(f"services.*.deploy.{k}_config.{f}" for k in ("update", "rollback")
      for f in ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio",
                "order")),
    "services.*.deploy.resources", "services.*.deploy.resources.limits",
    "services.*.deploy.resources.limits.cpus", "services.*.deploy.resources.limits.memory",
    "services.*.deploy.resources.limits.pids", "services.*.deploy.resources.reservations",
    "services.*.deploy.resources.reservations.cpus",
    "services.*.deploy.resources.reservations.memory",
    "services.*.deploy.restart_policy", "services.*.deploy.restart_policy.condition",
    "services.*.deploy.restart_policy.delay", "services.*.deploy.restart_policy.max_attempts",
    "services.*.deploy.restart_policy.window",
    "services.*.deploy.placement", "services.*.deploy.placement.constraints",
    "services.*.deploy.placement.constraints.*", "services.*.deploy.placement.preferences",
    "services.*.deploy.placement.preferences.*", "services.*.deploy.placement.preferences.*.spread",
    "services.*.deploy.placement.max_replicas_per_node",
    "volumes", "volumes.*", "volumes.*.name", "volumes.*.driver", "volumes.*.driver_opts",
    "volumes.*.driver_opts.*", "volumes.*.external", "volumes.*.labels", "volumes.*.labels.*",
    "networks", "networks.*", "networks.*.name", "networks.*.driver", "networks.*.external",
    "networks.*.internal", "networks.*.attachable", "networks.*.labels", "networks.*.labels.*",
    "networks.*.driver_opts", "networks.*.driver_opts.*",
    "configs", "configs.*", "configs.*.file", "configs.*.content", "configs.*.environment",
    "configs.*.name", "configs.*.external",
    "secrets", "secrets.*", "secrets.*.file", "secrets.*.environment", "secrets.*.name",
    "secrets.*.external",
)

NS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True)
class SwarmObject:
    """A config or secret to create: named by its content hash, so a change is a new object."""

    kind: str  # "config" | "secret"
    key: str  # the template's name for it
    name: str  # the swarm object's name
    digest: str  # sha256:<hex> of the content
    labels: dict[str, str]


@dataclass(frozen=True)
class Stack:
    """Everything swarm needs for one release of (project, environment)."""

    name: str
    labels: dict[str, str]  # project + environment, on every object
    networks: dict[str, dict[str, Any]]  # swarm name -> create_network kwargs (or external)
    objects: list[SwarmObject]
    services: dict[str, dict[str, Any]]  # template name -> ServiceSpec (Engine API JSON)
    waves: list[list[str]]  # start order: each wave after the one before it is running
    host_ports: dict[str, list[int]] = field(default_factory=dict)  # service -> host-mode ports


def scoped(stack: str, name: str) -> str:
    """A stack's name for one of its objects (`<project>-<environment>_<name>`)."""
    return f"{stack}_{name}"


def object_name(stack: str, key: str, digest: str) -> str:
    """Config/secret object name: `<stack>_<key>_<hash12>` (swarm caps names at 64)."""
    suffix = "_" + digest.removeprefix("sha256:")[:12]
    return scoped(stack, key)[: 64 - len(suffix)] + suffix


def release_object_name(stack: str, release_id: str) -> str:
    """The config object holding one release record (the id kept whole: names cap at 64)."""
    suffix = f"_release_{release_id}"
    return stack[: 64 - len(suffix)] + suffix


def ns(seconds: float) -> int:
    """Seconds as the Engine API's nanoseconds."""
    return round(seconds * NS_PER_SECOND)


def spec_hash(value: Any) -> str:
    """A stable hash of a JSON value, to tell whether a service's tasks must change."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def holds_data(container: Mapping[str, Any]) -> bool:
    """Whether a ContainerSpec mounts a volume or a host directory: two tasks of it at once
    could harm the data."""
    return any(m["Type"] in ("volume", "bind") for m in container.get("Mounts") or [])


def waves(services: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """Services grouped so that each group depends only on earlier groups."""
    from steps.template import dependency_order

    level: dict[str, int] = {}
    for name in dependency_order(services):
        deps = services[name].get("depends_on") or {}
        level[name] = 1 + max((level[d] for d in deps), default=-1)
    out: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name, n in level.items():
        out[n].append(name)
    return out


def check_host_ports(stack: Stack, template: Template, nodes: int) -> None:
    """A host-mode port has one owner per node: refuse what could never be scheduled.

    Too many replicas never all run; a start-first update needs a free node for its new task.
    """
    from steps.template import TemplateError

    for name, spec in stack.services.items():
        if not stack.host_ports.get(name):
            continue
        replicas = (spec["Mode"].get("Replicated") or {"Replicas": nodes})["Replicas"]
        if replicas > nodes:
            raise TemplateError(
                f"{template.where(('services', name, 'deploy', 'replicas'))}: {replicas} "
                f"replicas cannot all run: the service publishes host-mode port(s) "
                f"{stack.host_ports[name]} and the swarm has {nodes} node(s), one task per "
                "node; use fewer replicas or publish with mode: ingress")
        for key, conf in (("update_config", "UpdateConfig"), ("rollback_config", "RollbackConfig")):
            if spec[conf]["Order"] == "start-first" and replicas >= nodes:
                raise TemplateError(
                    f"{template.where(('services', name, 'deploy', key, 'order'))}: "
                    f"start-first cannot work here: the service publishes host-mode port(s) "
                    f"{stack.host_ports[name]} and the swarm has {nodes} node(s) for {replicas} "
                    "replica(s), so the new task finds no free port; use stop-first, fewer "
                    "replicas or more nodes")
