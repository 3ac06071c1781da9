"""The application template as Docker Swarm objects: service specs in the Engine API's JSON.

Pure domain logic (no docker import), so the translation can be read and tested alone:
`plan_stack(template, project, environment, release_id)` -> `Stack` (networks, configs,
secrets, and one ServiceSpec per service, in start order). Anything swarm cannot honour is a
TemplateError naming the key, its file and line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from steps.targets import (
    LABEL_CONFIG_HASH,
    LABEL_ENVIRONMENT,
    LABEL_PROJECT,
    LABEL_RELEASE,
    LABEL_ROLE,
    LABEL_SERVICE,
    name_prefix,
)
from steps.targets.swarm.stack import (
    NS_PER_SECOND,
    Stack,
    SwarmObject,
    ns,
    object_name,
    scoped,
    spec_hash,
    waves,
)
from steps.template import Template, TemplateError, parse_size

_RESTART = {"no": "none", "always": "any", "unless-stopped": "any", "on-failure": "on-failure"}
_NAME_MAX = 63  # a swarm service name is a DNS label


def plan_stack(template: Template, project: str, environment: str,
               release_id: str) -> Stack:
    """Translate the normalised template into swarm objects; raise on what swarm cannot do."""
    return _Planner(template, project, environment, release_id).stack()


def template_problems(template: Template) -> list[str]:
    """What swarm cannot do with this template, found without a swarm (names stand in)."""
    try:
        plan_stack(template, "check", "check", "check")
    except TemplateError as e:
        return list(e.problems)
    return []


class _Planner:
    def __init__(self, template: Template, project: str, environment: str,
                 release_id: str) -> None:
        self.t = template
        self.model = template.model
        self.stack_name = name_prefix(project, environment)
        self.release_id = release_id
        self.labels = {LABEL_PROJECT: project, LABEL_ENVIRONMENT: environment}

    def fail(self, path: tuple, message: str) -> TemplateError:
        return TemplateError(f"{self.t.where(path)}: {message}")

    def stack(self) -> Stack:
        """The stack; what swarm cannot do is one TemplateError (the first problem of each
        part: networks, configs and secrets, each service)."""
        problems: list[str] = []
        networks = self._collect(problems, self.networks, {})
        objects = self._collect(problems, self.objects, [])
        by_key = {(o.kind, o.key): o for o in objects}
        services, host_ports = {}, {}
        for name, spec in self.model["services"].items():
            services[name] = self._collect(problems, self.service, None, name, spec, by_key)
            if services[name] is None:
                continue
            host_ports[name] = [p["PublishedPort"] for p in
                                services[name]["EndpointSpec"].get("Ports", [])
                                if p["PublishMode"] == "host" and p.get("PublishedPort")]
        if problems:
            raise TemplateError.of(problems)
        return Stack(self.stack_name, dict(self.labels), networks, objects, services,
                     waves(self.model["services"]), host_ports)

    @staticmethod
    def _collect(problems: list[str], work: Any, default: Any, *args: Any) -> Any:
        try:
            return work(*args)
        except TemplateError as e:
            problems.extend(e.problems)
            return default

    # ------------------------------------------------------------ top level

    def network_name(self, key: str) -> str:
        spec = (self.model.get("networks") or {}).get(key) or {}
        return str(spec.get("name") or scoped(self.stack_name, key))

    def networks(self) -> dict[str, dict[str, Any]]:
        declared = dict(self.model.get("networks") or {})
        used = {n for s in self.model["services"].values() for n in s["networks"]}
        out = {}
        for key in sorted(used | set(declared)):
            spec = declared.get(key) or {}
            driver = spec.get("driver", "overlay")
            if driver != "overlay" and not spec.get("external"):
                raise self.fail(("networks", key, "driver"), f"driver {driver!r}: swarm "
                                "services attach to overlay networks only; use driver: overlay")
            out[self.network_name(key)] = {
                "external": bool(spec.get("external")),
                "driver": "overlay", "internal": bool(spec.get("internal", False)),
                "attachable": bool(spec.get("attachable", True)),
                "options": {str(k): str(v) for k, v in (spec.get("driver_opts") or {}).items()},
                "labels": {**_str_map(spec.get("labels")), **self.labels, LABEL_ROLE: "network"},
            }
        return out

    def objects(self) -> list[SwarmObject]:
        out = []
        for kind, contents in (("config", self.t.configs), ("secret", self.t.secrets)):
            for key, data in sorted(contents.items()):
                if (self.model.get(kind + "s") or {}).get(key, {}).get("name"):
                    raise self.fail((kind + "s", key, "name"), f"the swarm target names {kind}s "
                                    "by content hash; name: is for external: true objects only")
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                out.append(SwarmObject(kind, key, object_name(self.stack_name, key, digest),
                                       digest, {**self.labels, LABEL_ROLE: kind}))
        return out

    # ------------------------------------------------------------ one service

    def service(self, name: str, spec: dict[str, Any],
                objects: Mapping[tuple[str, str], SwarmObject]) -> dict[str, Any]:
        base = ("services", name)
        full = scoped(self.stack_name, name)
        if len(full) > _NAME_MAX:
            raise self.fail(base, f"the swarm service name {full!r} is longer than {_NAME_MAX} "
                            "characters; shorten --project (CD_PROJECT) or the service name")
        deploy = spec.get("deploy") or {}
        container = self.container(name, spec, objects)
        task: dict[str, Any] = {
            "ContainerSpec": container,
            "Networks": [{"Target": self.network_name(net),
                          "Aliases": [name, *[str(a) for a in (conf or {}).get("aliases", [])]]}
                         for net, conf in sorted(spec["networks"].items())],
            "ForceUpdate": 0,
        }
        if resources := self.resources(deploy.get("resources"), (*base, "deploy", "resources")):
            task["Resources"] = resources
        if restart := self.restart(spec, (*base,)):
            task["RestartPolicy"] = restart
        if "logging" in spec:
            task["LogDriver"] = {"Name": spec["logging"]["driver"],
                                 "Options": dict(spec["logging"]["options"])}
        if placement := self.placement(deploy.get("placement"), (*base, "deploy", "placement")):
            task["Placement"] = placement
        endpoint = self.endpoint(spec, deploy, base)
        # The hash of what the tasks run: tasks carrying it are tasks of this spec.
        config_hash = spec_hash({"task": task, "endpoint": endpoint})
        container["Labels"][LABEL_CONFIG_HASH] = config_hash
        labels = {**_str_map(deploy.get("labels")), **self.labels, LABEL_SERVICE: name,
                  LABEL_RELEASE: self.release_id, LABEL_ROLE: "service",
                  LABEL_CONFIG_HASH: config_hash}
        return {
            "Name": full, "Labels": labels, "TaskTemplate": task,
            "Mode": self.mode(deploy, (*base, "deploy")),
            "UpdateConfig": self.update_config(deploy.get("update_config"),
                                               (*base, "deploy", "update_config"), update=True),
            "RollbackConfig": self.update_config(deploy.get("rollback_config"),
                                                 (*base, "deploy", "rollback_config"),
                                                 update=False),
            "EndpointSpec": endpoint,
        }

    def container(self, name: str, spec: dict[str, Any],
                  objects: Mapping[tuple[str, str], SwarmObject]) -> dict[str, Any]:
        base = ("services", name)
        c: dict[str, Any] = {
            "Image": str(spec["image"]),
            "Labels": {**spec.get("labels", {}), **self.labels, LABEL_SERVICE: name},
        }
        if spec.get("entrypoint") is not None:
            c["Command"] = list(spec["entrypoint"])
        if spec.get("command") is not None:
            c["Args"] = list(spec["command"])
        if spec.get("environment"):
            c["Env"] = [f"{k}={v}" for k, v in sorted(spec["environment"].items())]
        for key, api in (("user", "User"), ("working_dir", "Dir"), ("hostname", "Hostname"),
                         ("stop_signal", "StopSignal")):
            if spec.get(key) is not None:
                c[api] = str(spec[key])
        for key, api in (("init", "Init"), ("read_only", "ReadOnly"), ("tty", "TTY"),
                         ("stdin_open", "OpenStdin")):
            if spec.get(key) is not None:
                c[api] = bool(spec[key])
        if spec.get("stop_grace_period") is not None:
            c["StopGracePeriod"] = ns(spec["stop_grace_period"])
        if spec.get("extra_hosts"):
            c["Hosts"] = [f"{ip} {host}" for host, ip in sorted(spec["extra_hosts"].items())]
        if "healthcheck" in spec:
            c["Healthcheck"] = self.healthcheck(spec["healthcheck"])
        if mounts := [self.mount(v, (*base, "volumes", i))
                      for i, v in enumerate(spec["volumes"])]:
            c["Mounts"] = mounts
        for kind, api in (("config", "Configs"), ("secret", "Secrets")):
            refs = []
            for ref in spec[kind + "s"]:
                obj = objects.get((kind, ref["source"]))
                if obj is None:  # declared external: the object exists under its own name
                    decl = self.model[kind + "s"][ref["source"]]
                    name_ = str(decl.get("name") or ref["source"])
                else:
                    name_ = obj.name
                refs.append({"File": {"Name": ref["target"], "UID": ref["uid"] or "0",
                                      "GID": ref["gid"] or "0",
                                      "Mode": 0o444 if ref["mode"] is None else ref["mode"]},
                             f"{kind.title()}Name": name_})
            if refs:
                c[api] = refs
        return c

    def healthcheck(self, hc: dict[str, Any]) -> dict[str, Any]:
        if hc.get("disable"):
            return {"Test": ["NONE"]}
        out: dict[str, Any] = {}
        if "test" in hc:
            out["Test"] = list(hc["test"])
        for key, api in (("interval", "Interval"), ("timeout", "Timeout"),
                         ("start_period", "StartPeriod")):
            if key in hc:
                out[api] = ns(hc[key])
        if "retries" in hc:
            out["Retries"] = int(hc["retries"])
        return out

    def mount(self, vol: dict[str, Any], path: tuple) -> dict[str, Any]:
        kind = vol["type"]
        mount: dict[str, Any] = {"Type": kind, "Target": vol["target"],
                                 "ReadOnly": bool(vol["read_only"])}
        if kind == "volume":
            if vol["source"]:
                decl = (self.model.get("volumes") or {}).get(vol["source"]) or {}
                external = bool(decl.get("external"))
                mount["Source"] = str(decl.get("name") or (
                    vol["source"] if external else scoped(self.stack_name, vol["source"])))
                if not external:
                    options: dict[str, Any] = {"Labels": {**_str_map(decl.get("labels")),
                                                          **self.labels, LABEL_ROLE: "volume"}}
                    if decl.get("driver") or decl.get("driver_opts"):
                        options["DriverConfig"] = {
                            "Name": decl.get("driver") or "local",
                            "Options": _str_map(decl.get("driver_opts"))}
                    mount["VolumeOptions"] = options
        elif kind == "bind":
            mount["Source"] = vol["source"]
        elif kind != "tmpfs":
            raise self.fail((*path, "type"), f"volume type {kind!r}: the swarm target mounts "
                            "volume, bind and tmpfs")
        return mount

    def resources(self, res: Any, path: tuple) -> dict[str, Any]:
        out = {}
        for kind, api in (("limits", "Limits"), ("reservations", "Reservations")):
            given = (res or {}).get(kind) or {}
            entry = {}
            if "cpus" in given:
                entry["NanoCPUs"] = int(float(given["cpus"]) * NS_PER_SECOND)
            if "memory" in given:
                entry["MemoryBytes"] = parse_size(given["memory"])
            if "pids" in given:
                if kind != "limits":
                    raise self.fail((*path, kind, "pids"), "pids is a limit, not a reservation")
                entry["Pids"] = int(given["pids"])
            if entry:
                out[api] = entry
        return out

    def restart(self, spec: dict[str, Any], base: tuple) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if spec.get("restart") is not None:
            word, _, attempts = str(spec["restart"]).partition(":")
            if word not in _RESTART:
                raise self.fail((*base, "restart"), "restart is no, always, unless-stopped or "
                                f"on-failure[:N]; got {spec['restart']!r}")
            out["Condition"] = _RESTART[word]
            if attempts:
                out["MaxAttempts"] = int(attempts)
        policy = (spec.get("deploy") or {}).get("restart_policy") or {}
        path = (*base, "deploy", "restart_policy")
        if "condition" in policy:
            if policy["condition"] not in ("none", "on-failure", "any"):
                raise self.fail((*path, "condition"), "condition is none, on-failure or any")
            out["Condition"] = policy["condition"]
        for key, api in (("delay", "Delay"), ("window", "Window")):
            if key in policy:
                out[api] = ns(policy[key])
        if "max_attempts" in policy:
            out["MaxAttempts"] = int(policy["max_attempts"])
        return out

    def placement(self, placement: Any, path: tuple) -> dict[str, Any]:
        placement = placement or {}
        out: dict[str, Any] = {}
        if placement.get("constraints"):
            out["Constraints"] = [str(c) for c in placement["constraints"]]
        if placement.get("preferences"):
            out["Preferences"] = [{"Spread": {"SpreadDescriptor": str(p["spread"])}}
                                  for p in placement["preferences"]]
        if placement.get("max_replicas_per_node") is not None:
            out["MaxReplicas"] = int(placement["max_replicas_per_node"])
        return out

    def mode(self, deploy: dict[str, Any], path: tuple) -> dict[str, Any]:
        mode = deploy.get("mode", "replicated")
        if mode == "global":
            if "replicas" in deploy:
                raise self.fail((*path, "replicas"), "a global service runs one task per node; "
                                "remove replicas or use mode: replicated")
            return {"Global": {}}
        if mode != "replicated":
            raise self.fail((*path, "mode"), f"mode {mode!r}: use replicated or global")
        return {"Replicated": {"Replicas": int(deploy.get("replicas", 1))}}

    def update_config(self, conf: Any, path: tuple, update: bool) -> dict[str, Any]:
        conf = conf or {}
        # A failed update ends in rollback unless the template says otherwise.
        out: dict[str, Any] = {"Parallelism": int(conf.get("parallelism", 1)),
                               "FailureAction": conf.get("failure_action",
                                                         "rollback" if update else "pause"),
                               "Order": conf.get("order", "stop-first")}
        allowed = ("continue", "pause", "rollback") if update else ("continue", "pause")
        if out["FailureAction"] not in allowed:
            raise self.fail((*path, "failure_action"),
                            f"failure_action is one of {', '.join(allowed)}")
        for key, api in (("delay", "Delay"), ("monitor", "Monitor")):
            if key in conf:
                out[api] = ns(conf[key])
        if "max_failure_ratio" in conf:
            out["MaxFailureRatio"] = float(conf["max_failure_ratio"])
        return out

    def endpoint(self, spec: dict[str, Any], deploy: dict[str, Any],
                 base: tuple) -> dict[str, Any]:
        ports = []
        for i, port in enumerate(spec["ports"]):
            path = (*base, "ports", i)
            if port.get("host_ip"):
                raise self.fail((*path, "host_ip"), "swarm publishes on every address of the "
                                "node; remove the host IP")
            entry: dict[str, Any] = {"Protocol": port["protocol"], "TargetPort": port["target"],
                                     # the routing mesh is not everywhere; host mode always works
                                     "PublishMode": _publish_mode(self.t.raw, path)}
            published = port.get("published")
            if published:
                if not re.fullmatch(r"\d+", str(published)):
                    raise self.fail((*path, "published"), "swarm publishes one port per entry; "
                                    "write one entry per port instead of a range")
                entry["PublishedPort"] = int(published)
            ports.append(entry)
        # DNS round robin unless asked: a virtual IP needs IPVS, which (like the routing mesh)
        # not every kernel offers; the mesh (an ingress port) needs the virtual IP.
        mesh = any(p["PublishMode"] == "ingress" for p in ports)
        out: dict[str, Any] = {"Mode": deploy.get("endpoint_mode", "vip" if mesh else "dnsrr")}
        if out["Mode"] not in ("vip", "dnsrr"):
            raise self.fail((*base, "deploy", "endpoint_mode"), "endpoint_mode is vip or dnsrr")
        if mesh and out["Mode"] == "dnsrr":
            raise self.fail((*base, "deploy", "endpoint_mode"), "dnsrr cannot publish a port "
                            "with mode: ingress; use mode: host for the port or endpoint_mode: vip")
        if ports:
            out["Ports"] = ports
        return out


def _publish_mode(raw: Any, path: tuple) -> str:
    """`host` unless the template asks for the routing mesh (`mode: ingress`) explicitly.

    The normalised model says "ingress" for every port written in short syntax, so the raw
    template decides: only a long-syntax `mode: ingress` selects the mesh.
    """
    node = raw
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return "host"
    return "ingress" if isinstance(node, dict) and node.get("mode") == "ingress" else "host"


def _str_map(value: Any) -> dict[str, str]:
    if isinstance(value, list):
        value = dict(str(v).partition("=")[::2] for v in value)
    return {str(k): "" if v is None else str(v) for k, v in (value or {}).items()}
