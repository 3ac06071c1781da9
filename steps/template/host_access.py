"""What a template may not do to the host it runs on, unless the repository says so. Pure.

Refused by default, each with the `file:line: key` of where it was written:
  - binding a system path (`/`, `/etc`, `/proc`, `/var/lib/docker`, ...), a directory holding
    one (`/var` holds the Docker socket), or a socket (`/var/run/docker.sock`): each gives the
    container the host;
  - `cap_add` beyond Docker's default capabilities (`ALL`, `SYS_ADMIN`, `NET_ADMIN`, ...);
  - a named volume whose driver options bind such a host path (`driver_opts: {device: /}`).
(`privileged`, `network_mode`, `pid`, `devices` and the like no target supports at all.)

The allowances are part of the template, so they are reviewed with it and change its hash (a
deploy whose template changed needs approving again):

    x-docker-cd:
      allow:
        - {service: agent, bind: /var/run/docker.sock, reason: runs CI jobs on this engine}
        - {service: vpn, cap_add: NET_ADMIN, reason: sets up the tunnel}
        - {volume: logs, device: /var/log, reason: ships the host's logs}
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from steps.template.merge import KeyPath
from steps.template.problems import Problems

SYSTEM_PATHS = (
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/proc", "/root", "/run", "/sbin", "/sys", "/usr", "/var/run", "/var/lib/docker",
    "/var/lib/containerd", "/var/lib/kubelet", "/var/log",
)
DOCKER_DEFAULT_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
_HOW = "remove it, or allow it under x-docker-cd.allow"


def check_host_access(raw: Any, model: Mapping[str, Any], directory: Path,
                      problems: Problems) -> None:
    """Add a problem for each host escape the template's own allowances do not cover (a bind
    of the template directory's own files is none)."""
    allowed = _allowances(model)
    own = str(directory.resolve())
    for name, spec in model["services"].items():
        base: KeyPath = ("services", name)
        for i, volume in enumerate(spec.get("volumes") or []):
            source = volume.get("source")
            if volume.get("type") != "bind" or not source or _path(source) == own or \
                    _path(source).startswith(own + "/"):
                continue
            why = host_path_danger(source)
            if why and ("bind", name, _path(source)) not in allowed:
                problems.add(raw, (*base, "volumes", i),
                             f"binds the host's {source} ({why}); {_HOW} "
                             f"({{service: {name}, bind: {source}, reason: ...}})")
        for i, cap in enumerate(spec.get("cap_add") or []):
            cap = capability(cap)
            if cap not in DOCKER_DEFAULT_CAPABILITIES and ("cap_add", name, cap) not in allowed:
                problems.add(raw, (*base, "cap_add", i),
                             f"adds capability {cap}, beyond Docker's defaults; {_HOW} "
                             f"({{service: {name}, cap_add: {cap}, reason: ...}})")
    for name, spec in (model.get("volumes") or {}).items():
        device = str(((spec or {}).get("driver_opts") or {}).get("device") or "")
        why = host_path_danger(device) if device.startswith("/") else None
        if why and ("device", name, _path(device)) not in allowed:
            problems.add(raw, ("volumes", name, "driver_opts", "device"),
                         f"mounts the host's {device} ({why}); {_HOW} "
                         f"({{volume: {name}, device: {device}, reason: ...}})")


def host_path_danger(path: str) -> str | None:
    """Why binding this host path hands the container the host, or None if it does not."""
    path = _path(path)
    if path.endswith(".sock"):
        return "a socket of the host: the Docker socket is root on the host"
    for system in SYSTEM_PATHS:
        if path == system or (system != "/" and path.startswith(system + "/")):
            return f"{system} is a system path"
        if path != "/" and system.startswith(path + "/"):
            return f"it holds {system}"
    return None


def capability(name: Any) -> str:
    """`cap_sys_admin`, `CAP_SYS_ADMIN` and `SYS_ADMIN` are one capability."""
    return str(name).upper().removeprefix("CAP_")


def _path(path: str) -> str:
    return posixpath.normpath("/" + path.lstrip("/")) if path.startswith("/") else path


def _allowances(model: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    entries: Iterable[Any] = ((model.get("x-docker-cd") or {}).get("allow") or [])
    allowed = set()
    for entry in entries:
        if not isinstance(entry, dict):
            continue  # the schema reported it
        if entry.get("bind"):
            allowed.add(("bind", str(entry.get("service")), _path(str(entry["bind"]))))
        if entry.get("cap_add"):
            allowed.add(("cap_add", str(entry.get("service")), capability(entry["cap_add"])))
        if entry.get("device"):
            allowed.add(("device", str(entry.get("volume")), _path(str(entry["device"]))))
    return allowed
