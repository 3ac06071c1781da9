"""The merged template in long syntax: what every deploy target reads. Pure.

Reads the files a template refers to (env_file, config and secret files) relative to its
directory; errors name the file and line where the value was written.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from steps.runtime.masking import is_secret_name
from steps.template.merge import KeyPath, LocDict, as_mapping, where
from steps.template.model import Check, TemplateError
from steps.template.values import parse_duration, parse_env_file, parse_port, parse_size


class Normaliser:
    """Turns the merged model into the long syntax every target reads."""

    def __init__(self, raw: LocDict, directory: Path, environ: Mapping[str, str]) -> None:
        self.raw = raw
        self.directory = directory
        self.environ = environ
        self.secret_paths: set[KeyPath] = set()

    def fail(self, path: KeyPath, message: str) -> TemplateError:
        return TemplateError(f"{where(self.raw, path)}: {message}")

    def _mapping(self, value: Any, path: KeyPath) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        return value

    def model(self) -> dict[str, Any]:
        raw = self.raw
        services = self._mapping(raw.get("services"), ("services",))
        if not services:
            raise self.fail(("services",), "the template defines no services")
        model: dict[str, Any] = {k: raw[k] for k in ("name",) if k in raw}
        model["services"] = {name: self.service(name, self._mapping(spec, ("services", name)))
                             for name, spec in services.items()}
        for kind in ("volumes", "networks", "configs", "secrets"):
            model[kind] = {name: dict(self._mapping(spec, (kind, name)))
                           for name, spec in self._mapping(raw.get(kind), (kind,)).items()}
        model.update({k: v for k, v in raw.items() if k.startswith("x-")})
        self._check_references(model)
        return _plain(model)

    def service(self, name: str, spec: dict) -> dict[str, Any]:
        base: KeyPath = ("services", name)
        if not spec.get("image"):
            raise self.fail(base, "every service needs an image (use image: ${CD_IMAGE} for the "
                                  "one being released)")
        out: dict[str, Any] = dict(spec)
        for key in ("command", "entrypoint"):
            if isinstance(spec.get(key), str):
                out[key] = shlex.split(spec[key])
            elif key in spec and spec[key] is not None:
                out[key] = [str(a) for a in spec[key]]
        out["environment"] = self.environment(spec, base)
        out.pop("env_file", None)
        out["ports"] = [self.port(p, (*base, "ports", i))
                        for i, p in enumerate(spec.get("ports") or [])]
        out["volumes"] = [self.volume(v, (*base, "volumes", i))
                          for i, v in enumerate(spec.get("volumes") or [])]
        for kind, prefix in (("configs", "/"), ("secrets", "/run/secrets/")):
            out[kind] = [self.file_ref(r, prefix, (*base, kind, i))
                         for i, r in enumerate(spec.get(kind) or [])]
        out["depends_on"] = self.depends_on(spec.get("depends_on"), (*base, "depends_on"))
        out["labels"] = {str(k): "" if v is None else str(v)
                         for k, v in as_mapping(spec.get("labels") or {}, "labels").items()}
        networks = as_mapping(spec.get("networks") or {"default": None}, "networks")
        out["networks"] = {str(k): dict(v or {}) for k, v in networks.items()}
        if "extra_hosts" in spec:
            out["extra_hosts"] = {str(k): str(v) for k, v in
                                  as_mapping(spec["extra_hosts"] or [], "extra_hosts").items()}
        if "healthcheck" in spec:
            out["healthcheck"] = self.healthcheck(spec["healthcheck"], (*base, "healthcheck"))
        for key in ("stop_grace_period",):
            if key in spec:
                out[key] = self.duration(spec[key], (*base, key))
        if "deploy" in spec:
            out["deploy"] = self.deploy(self._mapping(spec["deploy"], (*base, "deploy")),
                                        (*base, "deploy"))
        if "logging" in spec:
            logging = self._mapping(spec["logging"], (*base, "logging"))
            out["logging"] = {"driver": logging.get("driver", "json-file"),
                              "options": {str(k): str(v) for k, v in
                                          (logging.get("options") or {}).items()}}
        return out

    def environment(self, spec: dict, base: KeyPath) -> dict[str, str]:
        env: dict[str, str] = {}
        files = spec.get("env_file") or []
        for i, item in enumerate(files if isinstance(files, list) else [files]):
            path_ = (*base, "env_file", i)
            entry = item if isinstance(item, dict) else {"path": item}
            file = self.directory / str(entry.get("path"))
            if not file.is_file():
                if entry.get("required", True) is False:
                    continue
                raise self.fail(path_, f"env file {file} does not exist")
            env.update(parse_env_file(file.read_text(encoding="utf-8")))
        for key, value in as_mapping(spec.get("environment") or {}, "environment").items():
            if value is None:
                if key in self.environ:  # `- NAME` passes the variable through
                    env[str(key)] = self.environ[key]
                    if is_secret_name(str(key)):
                        self.secret_paths.add((*base, "environment", str(key)))
                continue
            env[str(key)] = _scalar_text(value)
        return env

    def port(self, item: Any, path: KeyPath) -> dict[str, Any]:
        if isinstance(item, dict):
            if "target" not in item:
                raise self.fail(path, "a port needs a target (the container's port)")
            published = item.get("published")
            return {"target": int(item["target"]),
                    "published": None if published in (None, "") else str(published),
                    "host_ip": item.get("host_ip"), "protocol": item.get("protocol", "tcp"),
                    "mode": item.get("mode", "ingress")}
        try:
            return parse_port(str(item))
        except ValueError as e:
            raise self.fail(path, str(e)) from e

    def volume(self, item: Any, path: KeyPath) -> dict[str, Any]:
        if isinstance(item, dict):
            if "target" not in item:
                raise self.fail(path, "a volume needs a target (the path in the container)")
            kind = item.get("type", "volume")
            return {"type": kind, "source": item.get("source"), "target": str(item["target"]),
                    "read_only": bool(item.get("read_only", False))}
        parts = str(item).split(":")
        if len(parts) == 1:
            return {"type": "volume", "source": None, "target": parts[0], "read_only": False}
        if len(parts) > 3 or (len(parts) == 3 and parts[2] not in ("ro", "rw", "z", "Z")):
            raise self.fail(path, f"expected SOURCE:TARGET[:ro], got {item!r}")
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
        if kind == "bind" and not source.startswith("/"):
            source = str((self.directory / source).resolve())
        return {"type": kind, "source": source, "target": target,
                "read_only": len(parts) == 3 and parts[2] == "ro"}

    def file_ref(self, item: Any, prefix: str, path: KeyPath) -> dict[str, Any]:
        entry = dict(item) if isinstance(item, dict) else {"source": str(item)}
        if not entry.get("source"):
            raise self.fail(path, "needs a source (the name of a top-level entry)")
        target = str(entry.get("target") or entry["source"])
        if not target.startswith("/"):
            target = prefix + target
        mode = entry.get("mode")
        if isinstance(mode, str):
            mode = int(mode, 8)
        return {"source": str(entry["source"]), "target": target,
                "uid": None if entry.get("uid") is None else str(entry["uid"]),
                "gid": None if entry.get("gid") is None else str(entry["gid"]), "mode": mode}

    def depends_on(self, value: Any, path: KeyPath) -> dict[str, dict[str, Any]]:
        out = {}
        for name, entry in as_mapping(value or {}, "depends_on").items():
            entry = dict(entry or {})
            condition = entry.get("condition", "service_started")
            if condition not in ("service_started", "service_healthy"):
                raise self.fail((*path, name, "condition"),
                                f"condition {condition!r} is not supported; use service_started "
                                "or service_healthy")
            out[str(name)] = {"condition": condition,
                              "required": bool(entry.get("required", True))}
        return out

    def healthcheck(self, value: Any, path: KeyPath) -> dict[str, Any]:
        spec = self._mapping(value, path)
        if spec.get("disable"):
            return {"disable": True}
        out: dict[str, Any] = {}
        test = spec.get("test")
        if isinstance(test, str):
            out["test"] = ["CMD-SHELL", test]
        elif test is not None:
            out["test"] = [str(t) for t in test]
            if out["test"] and out["test"][0] not in ("CMD", "CMD-SHELL", "NONE"):
                raise self.fail((*path, "test"), "a test list starts with CMD, CMD-SHELL or NONE")
        for key in ("interval", "timeout", "start_period"):
            if key in spec:
                out[key] = self.duration(spec[key], (*path, key))
        if "retries" in spec:
            out["retries"] = int(spec["retries"])
        return out

    def deploy(self, spec: dict, path: KeyPath) -> dict[str, Any]:
        out = dict(spec)
        if "replicas" in spec:
            out["replicas"] = int(spec["replicas"])
        for key in ("update_config", "rollback_config"):
            if key in spec:
                conf = dict(self._mapping(spec[key], (*path, key)))
                for dkey in ("delay", "monitor"):
                    if dkey in conf:
                        conf[dkey] = self.duration(conf[dkey], (*path, key, dkey))
                if conf.get("order", "start-first") not in ("start-first", "stop-first"):
                    raise self.fail((*path, key, "order"), "order is start-first or stop-first")
                out[key] = conf
        if "restart_policy" in spec:
            policy = dict(self._mapping(spec["restart_policy"], (*path, "restart_policy")))
            for dkey in ("delay", "window"):
                if dkey in policy:
                    policy[dkey] = self.duration(policy[dkey], (*path, "restart_policy", dkey))
            out["restart_policy"] = policy
        resources = self._mapping(spec.get("resources"), (*path, "resources"))
        if resources:
            out["resources"] = {}
            for kind in ("limits", "reservations"):
                given = self._mapping(resources.get(kind), (*path, "resources", kind))
                res: dict[str, Any] = {}
                try:
                    if "cpus" in given:
                        res["cpus"] = float(given["cpus"])
                    if "memory" in given:
                        res["memory"] = parse_size(given["memory"])
                    if "pids" in given:
                        res["pids"] = int(given["pids"])
                except ValueError as e:
                    raise self.fail((*path, "resources", kind), str(e)) from e
                if res or kind in resources:
                    out["resources"][kind] = {**given, **res}
        return out

    def duration(self, value: Any, path: KeyPath) -> float:
        try:
            return parse_duration(value)
        except ValueError as e:
            raise self.fail(path, str(e)) from e

    def _check_references(self, model: dict[str, Any]) -> None:
        services = model["services"]
        for name, spec in services.items():
            base = ("services", name)
            for dep in spec["depends_on"]:
                if dep not in services:
                    raise self.fail((*base, "depends_on", dep),
                                    f"depends on {dep!r}, which is not a service here")
            for i, vol in enumerate(spec["volumes"]):
                source = vol["source"]
                if vol["type"] == "volume" and source and source not in model["volumes"]:
                    raise self.fail((*base, "volumes", i),
                                    f"volume {vol['source']!r} is not declared under the top-level "
                                    "volumes:")
            for kind in ("configs", "secrets"):
                for i, ref in enumerate(spec[kind]):
                    if ref["source"] not in model[kind]:
                        raise self.fail((*base, kind, i), f"{kind[:-1]} {ref['source']!r} is not "
                                        f"declared under the top-level {kind}:")
            for net in spec["networks"]:
                if net != "default" and net not in model["networks"]:
                    raise self.fail((*base, "networks", net),
                                    f"network {net!r} is not declared under the top-level "
                                    "networks:")
        _dependency_order(services, self.fail)

    def contents(self, kind: str) -> dict[str, bytes]:
        """The content of each top-level config or secret (file:, content:, environment:)."""
        out = {}
        for name, spec in self._mapping(self.raw.get(kind), (kind,)).items():
            path = (kind, name)
            spec = self._mapping(spec, path)
            if "file" in spec:
                file = self.directory / str(spec["file"])
                if not file.is_file():
                    raise self.fail((*path, "file"), f"file {file} does not exist")
                out[name] = file.read_bytes()
            elif "content" in spec:
                out[name] = str(spec["content"]).encode()
            elif "environment" in spec:
                var = str(spec["environment"])
                if var not in self.environ:
                    raise self.fail((*path, "environment"),
                                    f"variable {var} is not set; define it in the CI/CD variables")
                out[name] = self.environ[var].encode()
            elif not spec.get("external"):
                raise self.fail(path, "needs file:, content: or environment:")
        return out

    def checks(self) -> tuple[Check, ...]:
        ext = self._mapping(self.raw.get("x-docker-cd"), ("x-docker-cd",))
        items = ext.get("verify") or []
        if not isinstance(items, list):
            raise self.fail(("x-docker-cd", "verify"), "expected a list of checks")
        checks = []
        for i, item in enumerate(items):
            path = ("x-docker-cd", "verify", i)
            spec = self._mapping(item, path)
            unknown = set(spec) - {"name", "url", "status", "body", "command", "service",
                                   "timeout", "retries", "interval"}
            if unknown:
                raise self.fail((*path, sorted(unknown)[0]), "unknown check key; a check has "
                                "name, url, status, body, command, service, timeout, retries, "
                                "interval")
            if not spec.get("url") and not spec.get("command"):
                raise self.fail(path, "a check needs a url or a command")
            command = spec.get("command") or ()
            command = tuple(shlex.split(command) if isinstance(command, str) else map(str, command))
            try:
                checks.append(Check(
                    name=str(spec.get("name") or spec.get("url") or " ".join(command)),
                    url=spec.get("url"), status=int(spec.get("status", 200)),
                    body=None if spec.get("body") is None else str(spec["body"]),
                    command=command, service=spec.get("service"),
                    timeout=parse_duration(spec.get("timeout", 5)),
                    retries=int(spec.get("retries", 3)),
                    interval=parse_duration(spec.get("interval", 1))))
            except ValueError as e:
                raise self.fail(path, str(e)) from e
        return tuple(checks)


def checks_from_rendered(text: str) -> tuple[Check, ...]:
    """The verify checks of a recorded (rendered) template: what is deployed is what is checked."""
    data = yaml.safe_load(text) or {}
    return Normaliser(LocDict(data), Path("."), {}).checks()


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _plain(value: Any) -> Any:
    """Plain dicts and lists (no locations), safe to dump and to compare."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dependency_order(services: Mapping[str, Mapping[str, Any]],
                      fail: Callable[[KeyPath, str], Exception]) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join([*chain[chain.index(name):], name])
            raise fail(("services", name, "depends_on"), f"dependency cycle: {cycle}")
        state[name] = "visiting"
        for dep in services[name].get("depends_on", {}):
            visit(dep, [*chain, name])
        state[name] = "done"
        order.append(name)

    for name in services:
        visit(name, [])
    return order


def dependency_order(services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Service names so that each comes after everything it depends on."""
    return _dependency_order(services, lambda path, message: TemplateError(message))

