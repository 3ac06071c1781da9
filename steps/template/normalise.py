"""The merged template in long syntax: what every deploy target reads. Pure.

Reads the files a template refers to (env_file, config and secret files) inside its directory;
each problem names the file and line where the value was written, and every one is collected
(a value that cannot be read is left out, the rest goes on being checked).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from steps.runtime.masking import SecretNames
from steps.template.files import read_reference
from steps.template.merge import KeyPath, LocDict, as_mapping
from steps.template.model import Check
from steps.template.order import ordered
from steps.template.problems import Problems, did_you_mean
from steps.template.values import (
    as_list,
    command,
    false,
    parse_duration,
    parse_env_file,
    parse_port,
    parse_size,
    scalar_text,
    true,
)


class Invalid(Exception):
    """A value the normaliser cannot use: recorded as a problem at `path`."""

    def __init__(self, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class Normaliser:
    """Turns the merged model into the long syntax every target reads."""

    def __init__(self, raw: LocDict, directory: Path, environ: Mapping[str, str],
                 problems: Problems | None = None,
                 secret_names: SecretNames | None = None) -> None:
        self.raw = raw
        self.directory = directory
        self.environ = environ
        self.problems = problems if problems is not None else Problems()
        self.secret_names = secret_names or SecretNames()
        self.secret_paths: set[KeyPath] = set()

    def fail(self, path: KeyPath, message: str) -> Invalid:
        return Invalid(path, message)

    def guard(self, path: KeyPath, work: Callable[..., Any], *args: Any,
              default: Any = None) -> Any:
        """`work(*args)`, or `default` once what went wrong is a problem at `path`."""
        try:
            return work(*args)
        except Invalid as e:
            if not self.problems.touches(e.path):
                self.problems.add(self.raw, e.path, e.message)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            if not self.problems.touches(path):  # else the schema said what is wrong already
                self.problems.add(self.raw, path, f"cannot be read ({type(e).__name__}: {e})")
        return default

    def _mapping(self, value: Any, path: KeyPath) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        return value

    def model(self) -> dict[str, Any] | None:
        """The model in long syntax; None (and a problem) when it has no services at all."""
        raw = self.raw
        services = self.guard(("services",), self._mapping, raw.get("services"), ("services",),
                              default={})
        if not services:
            self.problems.add(raw, ("services",), "the template defines no services")
            return None
        model: dict[str, Any] = {k: raw[k] for k in ("name",) if k in raw}
        model["services"] = {}
        for name, spec in services.items():
            path = ("services", name)
            spec = self.guard(path, self._mapping, spec, path, default={})
            model["services"][name] = self.guard(path, self.service, name, spec,
                                                 default=_EMPTY_SERVICE)
        for kind in ("volumes", "networks", "configs", "secrets"):
            entries = self.guard((kind,), self._mapping, raw.get(kind), (kind,), default={})
            model[kind] = {name: dict(self.guard((kind, name), self._mapping, spec, (kind, name),
                                                 default={}))
                           for name, spec in entries.items()}
        model.update({k: v for k, v in raw.items() if k.startswith("x-")})
        self._check_references(model)
        return _plain(model)

    def service(self, name: str, spec: dict) -> dict[str, Any]:
        base: KeyPath = ("services", name)
        if not spec.get("image"):
            self.problems.add(self.raw, base, "every service needs an image (use image: "
                              "${CD_IMAGE} for the one being released, or for a member of a "
                              "release of several images ${CD_IMAGE_<NAME>}, set to its build "
                              "job's output)")
        out: dict[str, Any] = dict(spec)
        guard = self.guard
        for key in ("command", "entrypoint"):
            if key in spec and spec[key] is not None:
                out[key] = guard((*base, key), command, spec[key])
        out["environment"] = guard((*base, "environment"), self.environment, spec, base,
                                   default={})
        out.pop("env_file", None)
        for key, read in (("ports", self.port), ("volumes", self.volume)):
            items = [guard((*base, key, i), read, item, (*base, key, i))
                     for i, item in enumerate(as_list(spec.get(key)))]
            out[key] = [item for item in items if item is not None]
        for kind, prefix in (("configs", "/"), ("secrets", "/run/secrets/")):
            refs = [guard((*base, kind, i), self.file_ref, r, prefix, (*base, kind, i))
                    for i, r in enumerate(as_list(spec.get(kind)))]
            out[kind] = [r for r in refs if r is not None]
        out["depends_on"] = guard((*base, "depends_on"), self.depends_on, spec.get("depends_on"),
                                  (*base, "depends_on"), default={})
        out["labels"] = guard((*base, "labels"), str_map, spec.get("labels"), "labels",
                              default={})
        networks = guard((*base, "networks"), as_mapping,
                         spec.get("networks") or {"default": None}, "networks", default={})
        out["networks"] = {str(k): dict(v or {}) for k, v in networks.items()} or {"default": {}}
        if "extra_hosts" in spec:
            out["extra_hosts"] = guard((*base, "extra_hosts"), str_map, spec["extra_hosts"],
                                       "extra_hosts", default={})
        if "healthcheck" in spec:
            out["healthcheck"] = guard((*base, "healthcheck"), self.healthcheck,
                                       spec["healthcheck"], (*base, "healthcheck"), default={})
        if "stop_grace_period" in spec:
            out["stop_grace_period"] = guard((*base, "stop_grace_period"), self.duration,
                                             spec["stop_grace_period"],
                                             (*base, "stop_grace_period"))
        if "deploy" in spec:
            out["deploy"] = guard((*base, "deploy"), self.deploy, spec["deploy"],
                                  (*base, "deploy"), default={})
        if "logging" in spec:
            out["logging"] = guard((*base, "logging"), self.logging, spec["logging"],
                                   (*base, "logging"))
        return out

    def logging(self, value: Any, path: KeyPath) -> dict[str, Any]:
        logging = self._mapping(value, path)
        return {"driver": logging.get("driver", "json-file"),
                "options": {str(k): str(v) for k, v in (logging.get("options") or {}).items()}}

    def environment(self, spec: dict, base: KeyPath) -> dict[str, str]:
        env: dict[str, str] = {}
        files = spec.get("env_file") or []
        for i, item in enumerate(files if isinstance(files, list) else [files]):
            path_ = (*base, "env_file", i)
            entry = item if isinstance(item, dict) else {"path": item}
            given = str(entry.get("path"))
            if not (self.directory / given).exists() and false(entry.get("required", True)):
                continue
            try:
                data = read_reference(self.directory, given, "env file")
            except ValueError as e:
                self.problems.add(self.raw, path_, str(e))
                continue
            env.update(parse_env_file(data.decode("utf-8", errors="replace")))
        for key, value in as_mapping(spec.get("environment") or {}, "environment").items():
            if value is None:
                if key in self.environ:  # `- NAME` passes the variable through
                    env[str(key)] = self.environ[key]
                    if self.secret_names(str(key)):
                        self.secret_paths.add((*base, "environment", str(key)))
                continue
            env[str(key)] = scalar_text(value)
        return env

    def port(self, item: Any, path: KeyPath) -> dict[str, Any]:
        if isinstance(item, dict):
            if "target" not in item:
                raise self.fail(path, "a port needs a target (the container's port)")
            published = item.get("published")
            return {"target": int(str(item["target"])),
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
                    "read_only": true(item.get("read_only", False))}
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
        elif mode is not None:
            mode = int(mode)
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
                              "required": not false(entry.get("required", True))}
        return out

    def healthcheck(self, value: Any, path: KeyPath) -> dict[str, Any]:
        spec = self._mapping(value, path)
        if true(spec.get("disable")):
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
            out["retries"] = int(str(spec["retries"]))
        return out

    def deploy(self, value: Any, path: KeyPath) -> dict[str, Any]:
        spec = self._mapping(value, path)
        out = dict(spec)
        if "replicas" in spec:
            out["replicas"] = int(str(spec["replicas"]))
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
                        res["pids"] = int(str(given["pids"]))
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
        problem = self.problems.add
        for name, spec in services.items():
            base = ("services", name)
            for dep in spec["depends_on"]:
                if dep not in services:
                    problem(self.raw, (*base, "depends_on", dep), f"depends on {dep!r}, which is "
                            "not a service here" + did_you_mean(dep, services))
            for i, vol in enumerate(spec["volumes"]):
                source = vol["source"]
                if vol["type"] == "volume" and source and source not in model["volumes"]:
                    problem(self.raw, (*base, "volumes", i), f"volume {source!r} is not declared "
                            "under the top-level volumes:" + did_you_mean(source, model["volumes"]))
            for kind in ("configs", "secrets"):
                for i, ref in enumerate(spec[kind]):
                    if ref["source"] not in model[kind]:
                        problem(self.raw, (*base, kind, i), f"{kind[:-1]} {ref['source']!r} is not "
                                f"declared under the top-level {kind}:"
                                + did_you_mean(ref["source"], model[kind]))
            for net in spec["networks"]:
                if net != "default" and net not in model["networks"]:
                    problem(self.raw, (*base, "networks", net), f"network {net!r} is not declared "
                            "under the top-level networks:" + did_you_mean(net, model["networks"]))
        try:
            ordered(services, self.fail)
        except Invalid as e:
            problem(self.raw, e.path, e.message)

    def contents(self, kind: str) -> dict[str, bytes]:
        """The content of each top-level config or secret (file:, content:, environment:)."""
        out: dict[str, bytes] = {}
        entries = self.guard((kind,), self._mapping, self.raw.get(kind), (kind,), default={})
        for name, spec in entries.items():
            path = (kind, name)
            spec = self.guard(path, self._mapping, spec, path, default={})
            if "file" in spec:
                try:
                    out[name] = read_reference(self.directory, str(spec["file"]), "file")
                except ValueError as e:
                    self.problems.add(self.raw, (*path, "file"), str(e))
            elif "content" in spec:
                out[name] = str(spec["content"]).encode()
            elif "environment" in spec:
                var = str(spec["environment"])
                if var not in self.environ:
                    self.problems.add(self.raw, (*path, "environment"), f"variable {var} is not "
                                      "set; define it in the CI/CD variables")
                    continue
                out[name] = self.environ[var].encode()
            elif not true(spec.get("external")):
                self.problems.add(self.raw, path, "needs file:, content: or environment:")
        return out

    def checks(self) -> tuple[Check, ...]:
        ext = self.guard(("x-docker-cd",), self._mapping, self.raw.get("x-docker-cd"),
                         ("x-docker-cd",), default={})
        items = ext.get("verify") or []
        if not isinstance(items, list):
            self.problems.add(self.raw, ("x-docker-cd", "verify"), "expected a list of checks")
            return ()
        checks = []
        for i, item in enumerate(items):
            path = ("x-docker-cd", "verify", i)
            check = self.guard(path, self.check, item, path)
            if check is not None:
                checks.append(check)
        return tuple(checks)

    def check(self, item: Any, path: KeyPath) -> Check:
        """One verify check."""
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
        return Check(
            name=str(spec.get("name") or spec.get("url") or " ".join(command)),
            url=spec.get("url"), status=int(str(spec.get("status", 200))),
            body=None if spec.get("body") is None else str(spec["body"]),
            command=command, service=spec.get("service"),
            timeout=parse_duration(spec.get("timeout", 5)),
            retries=int(str(spec.get("retries", 3))),
            interval=parse_duration(spec.get("interval", 1)))


def checks_from_rendered(text: str) -> tuple[Check, ...]:
    """The verify checks of a recorded (rendered) template: what is deployed is what is checked."""
    data = yaml.safe_load(text) or {}
    normaliser = Normaliser(LocDict(data), Path("."), {})
    checks = normaliser.checks()
    normaliser.problems.check()
    return checks


_EMPTY_SERVICE: dict[str, Any] = {"depends_on": {}, "volumes": [], "configs": [], "secrets": [],
                                  "networks": {}, "ports": [], "environment": {}}


def str_map(value: Any, key: str) -> dict[str, str]:
    """labels, extra_hosts...: as a mapping of strings, whichever syntax was written."""
    return {str(k): "" if v is None else str(v) for k, v in as_mapping(value or {}, key).items()}


def _plain(value: Any) -> Any:
    """Plain dicts and lists (no locations), safe to dump and to compare."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
