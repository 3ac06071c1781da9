"""Pure translation of a normalised Compose service into Docker Engine API container settings.

Kept apart from the engine calls (steps.targets.docker) so names, labels and the config hash
that decides "unchanged, keep it running" can be read and tested alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from steps.targets import (
    LABEL_CONFIG_HASH,
    LABEL_ENVIRONMENT,
    LABEL_PROJECT,
    LABEL_RELEASE,
    LABEL_ROLE,
    LABEL_SERVICE,
    name_prefix,
)

if TYPE_CHECKING:
    from steps.template import Template

# What the docker target honours, as dotted key patterns (see Template.check_supported).
_SERVICE_KEYS = (
    "image", "command", "entrypoint", "environment", "environment.**", "env_file",
    "env_file.*.path", "env_file.*.required", "ports", "ports.*.target", "ports.*.published",
    "ports.*.host_ip", "ports.*.protocol", "volumes", "volumes.*.type", "volumes.*.source",
    "volumes.*.target", "volumes.*.read_only", "configs", "configs.*.source", "configs.*.target",
    "configs.*.uid", "configs.*.gid", "configs.*.mode", "secrets", "secrets.*.source",
    "secrets.*.target", "secrets.*.uid", "secrets.*.gid", "secrets.*.mode", "depends_on",
    "depends_on.*.condition", "depends_on.*.required", "healthcheck.test",
    "healthcheck.interval", "healthcheck.timeout", "healthcheck.retries",
    "healthcheck.start_period", "healthcheck.disable", "labels", "labels.**", "logging.driver",
    "logging.options", "logging.options.**", "restart", "deploy.replicas",
    "deploy.update_config.order", "deploy.update_config.monitor", "deploy.rollback_config.order",
    "deploy.resources.limits.cpus", "deploy.resources.limits.memory",
    "deploy.resources.limits.pids", "deploy.resources.reservations.memory", "networks",
    "networks.*.aliases", "stop_grace_period", "stop_signal", "init", "user", "working_dir",
    "hostname", "read_only", "tmpfs", "cap_add", "cap_drop", "extra_hosts", "extra_hosts.**",
)
SUPPORTED: tuple[str, ...] = (
    "version",
    *(f"services.*.{key}" for key in _SERVICE_KEYS),
    "volumes.*.name", "volumes.*.driver", "volumes.*.driver_opts.**", "volumes.*.labels.**",
    "volumes.*.external",
    "networks.*.name", "networks.*.driver", "networks.*.driver_opts.**", "networks.*.labels.**",
    "networks.*.external", "networks.*.internal", "networks.*.attachable",
    "configs.*.file", "configs.*.content", "configs.*.environment",
    "secrets.*.file", "secrets.*.environment",
)

DEFAULT_STOP_GRACE = 10.0
NS = 1_000_000_000


def resource_name(project: str, environment: str, name: str, spec: Mapping[str, Any]) -> str:
    """A volume's or network's engine name: its `name:` if given, else `<project>-<env>_<name>`."""
    if spec.get("name"):
        return str(spec["name"])
    if spec.get("external"):
        return name
    return f"{name_prefix(project, environment)}_{name}"


def container_name(project: str, environment: str, service: str, index: int) -> str:
    return f"{name_prefix(project, environment)}-{service}-{index}"


def labels(project: str, environment: str, role: str, **extra: str) -> dict[str, str]:
    """Our labels; `docker ps --filter label=io.docker-cd.project=shop` finds everything."""
    out = {LABEL_PROJECT: project, LABEL_ENVIRONMENT: environment, LABEL_ROLE: role}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def file_volume(project: str, environment: str, kind: str, name: str, content_hash: str,
                ref: Mapping[str, Any]) -> str:
    """The volume holding one config or secret file: named by content and ownership, immutable."""
    key = json.dumps([content_hash, ref.get("uid"), ref.get("gid"), ref.get("mode")])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{name_prefix(project, environment)}_{kind[:-1]}-{name}-{digest}"


def published_host_ports(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Ports bound to a fixed host port: only one container at a time can hold them."""
    return [p for p in spec.get("ports", []) if p.get("published")]


def create_kwargs(project: str, environment: str, service: str, spec: Mapping[str, Any],
                  image_id: str, mounts: list[dict[str, Any]], network: str,
                  aliases: list[str], with_ports: bool,
                  holder: str | None = None) -> dict[str, Any]:
    """Arguments for docker-py's `APIClient.create_container` (host config as a plain dict).

    With `holder` the container joins that container's network namespace, which owns the
    ports, networks, aliases and host name (see holder_kwargs).
    """
    host: dict[str, Any] = {"Mounts": mounts, "Init": spec.get("init", True)}
    if with_ports and spec.get("ports") and not holder:
        host["PortBindings"] = _port_bindings(spec["ports"])
    host.update(_restart(spec))
    if spec.get("logging"):
        host["LogConfig"] = {"Type": spec["logging"]["driver"],
                             "Config": spec["logging"].get("options", {})}
    resources = spec.get("deploy", {}).get("resources", {})
    limits, reservations = resources.get("limits", {}), resources.get("reservations", {})
    if "cpus" in limits:
        host["NanoCpus"] = int(limits["cpus"] * NS)
    if "memory" in limits:
        host["Memory"] = limits["memory"]
    if "pids" in limits:
        host["PidsLimit"] = limits["pids"]
    if "memory" in reservations:
        host["MemoryReservation"] = reservations["memory"]
    for key, api in (("cap_add", "CapAdd"), ("cap_drop", "CapDrop")):
        if spec.get(key):
            host[api] = list(spec[key])
    if spec.get("read_only"):
        host["ReadonlyRootfs"] = True
    if spec.get("tmpfs"):
        tmpfs = spec["tmpfs"] if isinstance(spec["tmpfs"], list) else [spec["tmpfs"]]
        host["Tmpfs"] = {str(t).partition(":")[0]: str(t).partition(":")[2] for t in tmpfs}
    if spec.get("extra_hosts") and not holder:
        host["ExtraHosts"] = _extra_hosts(spec)
    if holder:
        host["NetworkMode"] = f"container:{holder}"
    config: dict[str, Any] = {
        "image": image_id,
        "environment": [f"{k}={v}" for k, v in sorted(spec.get("environment", {}).items())],
        "labels": {**spec.get("labels", {}), **labels(project, environment, "service",
                                                      **{LABEL_SERVICE: service})},
        "stop_timeout": math.ceil(spec.get("stop_grace_period", DEFAULT_STOP_GRACE)),
        "host_config": host,
    }
    if not holder:
        config["networking_config"] = {"EndpointsConfig": {network: {"Aliases": aliases}}}
    for key in ("command", "entrypoint", "user", "working_dir", "stop_signal",
                *(() if holder else ("hostname",))):
        if spec.get(key) is not None:
            config[key] = spec[key]
    if with_ports and spec.get("ports") and not holder:
        config["ports"] = [(p["target"], p["protocol"]) for p in spec["ports"]]
    if spec.get("healthcheck"):
        config["healthcheck"] = _healthcheck(spec["healthcheck"])
    return config


def holder_kwargs(project: str, environment: str, service: str, spec: Mapping[str, Any],
                  image: str, network: str, aliases: list[str]) -> dict[str, Any]:
    """The network holder of a service with fixed host ports: owns ports, networks, aliases."""
    host: dict[str, Any] = {"Init": True, **_restart(spec)}
    host["PortBindings"] = _port_bindings(spec["ports"])
    if spec.get("extra_hosts"):
        host["ExtraHosts"] = _extra_hosts(spec)
    config: dict[str, Any] = {
        "image": image,
        "labels": labels(project, environment, "holder", **{LABEL_SERVICE: service}),
        "stop_timeout": 2,
        "host_config": host,
        "networking_config": {"EndpointsConfig": {network: {"Aliases": aliases}}},
        "ports": [(p["target"], p["protocol"]) for p in spec["ports"]],
    }
    if spec.get("hostname"):
        config["hostname"] = spec["hostname"]
    return config


def holder_name(project: str, environment: str, service: str) -> str:
    return f"{name_prefix(project, environment)}-{service}-net"


def _restart(spec: Mapping[str, Any]) -> dict[str, Any]:
    restart = str(spec.get("restart") or "no")
    name, _, count = restart.partition(":")
    if restart == "no":
        return {}
    return {"RestartPolicy": {"Name": name, "MaximumRetryCount": int(count or 0)}}


def _extra_hosts(spec: Mapping[str, Any]) -> list[str]:
    return [f"{h}:{ip}" for h, ip in spec["extra_hosts"].items()]


def config_hash(kwargs: Mapping[str, Any], extra_networks: Mapping[str, list[str]]) -> str:
    """What makes two containers the same: everything but names and the release label."""
    text = json.dumps([kwargs, extra_networks], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def with_release(kwargs: dict[str, Any], release: str, digest: str) -> dict[str, Any]:
    """Stamp the release and the config hash on a container's labels."""
    out = dict(kwargs)
    out["labels"] = {**kwargs["labels"], LABEL_RELEASE: release, LABEL_CONFIG_HASH: digest}
    return out


def with_environment(model: Mapping[str, Any],
                     values: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """The model with these environment entries set (secrets put back, or redacted)."""
    services = {name: {**spec, "environment": {**spec.get("environment", {}),
                                               **values.get(name, {})}}
                for name, spec in model["services"].items()}
    return {**model, "services": services}


def mounts(spec: Mapping[str, Any], volumes: Mapping[str, str],
           files: Mapping[tuple[str, str, str], str]) -> list[dict[str, Any]]:
    """Volumes, binds, tmpfs, and config/secret files (read-only binds of their volume)."""
    mounts = []
    for vol in spec["volumes"]:
        mount: dict[str, Any] = {"Target": vol["target"], "Type": vol["type"],
                                 "ReadOnly": vol["read_only"]}
        if vol["type"] == "volume" and vol["source"]:
            mount["Source"] = volumes[vol["source"]]
        elif vol["type"] == "bind":
            mount["Source"] = vol["source"]
        mounts.append(mount)
    for kind in ("configs", "secrets"):
        for ref in spec[kind]:
            source = files[(kind, ref["source"], ref["target"])]
            mounts.append({"Type": "bind", "Source": source, "Target": ref["target"],
                           "ReadOnly": True})
    return mounts


def _port_bindings(ports: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in ports:
        key = f"{port['target']}/{port['protocol']}"
        bindings.setdefault(key, []).append({"HostIp": port.get("host_ip") or "",
                                             "HostPort": str(port.get("published") or "")})
    return bindings


def _healthcheck(spec: Mapping[str, Any]) -> dict[str, Any]:
    if spec.get("disable"):
        return {"test": ["NONE"]}
    out: dict[str, Any] = {}
    if spec.get("test"):
        out["test"] = spec["test"]
    for key in ("interval", "timeout", "start_period"):
        if key in spec:
            out[key] = int(spec[key] * NS)
    if "retries" in spec:
        out["retries"] = spec["retries"]
    return out


def template_problems(template: Template) -> list[str]:
    """Values the docker target cannot honour (keys are checked against SUPPORTED)."""
    found = []
    for name, spec in template.model["services"].items():
        replicas = int(spec.get("deploy", {}).get("replicas", 1))
        where = template.where(("services", name, "deploy", "replicas"))
        if replicas > 1 and published_host_ports(spec):
            found.append(f"{where}: {replicas} replicas cannot share a fixed published port on "
                         "one engine; publish no host port or use --target swarm")
        if replicas < 1:
            found.append(f"{where}: the docker target runs at least one container")
    return found
