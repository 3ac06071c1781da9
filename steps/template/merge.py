"""Merging Compose files the way `docker compose -f base -f overlay` does, keeping where
(file, line) every key and item was written so errors can point at it. Pure.

Mappings merge; sequences append; command, entrypoint and healthcheck.test are replaced;
ports, volumes, configs and secrets are unique by their target; environment, labels,
depends_on and networks merge as mappings whichever syntax each file used; `!reset` removes a
value and `!override` replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from steps.template.values import parse_port

KeyPath = tuple[str | int, ...]  # ("services", "web", "ports", 0): where a value sits


class LocDict(dict):
    """A mapping that remembers where (file, line) each of its keys was written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.locs: dict[str, tuple[str, int]] = {}


class LocList(list):
    """A sequence that remembers where each of its items was written."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.locs: list[tuple[str, int] | None] = [None] * len(self)


class Reset:
    def __repr__(self) -> str:
        return "!reset"


RESET = Reset()


@dataclass
class Override:
    value: Any


def format_path(path: KeyPath) -> str:
    """`("services", "web", "ports", 0)` -> `services.web.ports[0]`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def where(raw: Any, path: KeyPath) -> str:
    """Walk the merged model to the location recorded for `path` (or its nearest parent)."""
    node, loc = raw, None
    for part in path:
        locs = getattr(node, "locs", None)
        try:
            if locs is not None and locs[part] is not None:
                loc = locs[part]
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    text = format_path(path) or "(top)"
    return f"{loc[0]}:{loc[1]}: {text}" if loc else text


_REPLACED = {"command", "entrypoint"}
_AS_MAPPING = {"environment", "labels", "extra_hosts", "sysctls", "depends_on", "networks",
               "annotations"}
_UNIQUE = {"ports", "volumes", "configs", "secrets", "expose"}
_TO_LIST = {"env_file", "dns", "dns_search", "tmpfs"}


def merge(base: Any, over: Any, path: KeyPath = ()) -> Any:
    """Merge two Compose values the way `docker compose -f base -f over` does."""
    if isinstance(over, Override):
        return over.value
    service_key = path[2] if len(path) == 3 and path[0] == "services" else None
    if service_key in _REPLACED or (len(path) == 4 and path[-2:] == ("healthcheck", "test")):
        return over
    if service_key in _AS_MAPPING:
        base, over = as_mapping(base, service_key), as_mapping(over, service_key)
    elif service_key in _TO_LIST:
        base = base if isinstance(base, list) else LocList([base])
        over = over if isinstance(over, list) else LocList([over])
    if isinstance(base, dict) and isinstance(over, dict):
        out = LocDict(base)
        out.locs = dict(getattr(base, "locs", {}))
        for key, value in over.items():
            if value is RESET:
                out.pop(key, None)
                continue
            out[key] = merge(base[key], value, (*path, key)) if key in base else _clean(value)
            loc = getattr(over, "locs", {}).get(key)
            if loc and not (key in base and isinstance(out[key], dict | list)):
                out.locs[key] = loc  # a merged mapping or list keeps where it started
        return out
    if isinstance(base, list) and isinstance(over, list):
        if service_key in _UNIQUE:
            return _merge_unique(base, over, service_key)
        return _concat(base, over)
    return _clean(over)


def _clean(value: Any) -> Any:
    """Drop merge tags from a value that has nothing to merge with."""
    if isinstance(value, Override):
        return _clean(value.value)
    if isinstance(value, dict):
        out = LocDict({k: _clean(v) for k, v in value.items() if v is not RESET})
        out.locs = dict(getattr(value, "locs", {}))
        return out
    return value


def _concat(base: list, over: list, keep: Sequence[int] | None = None) -> LocList:
    out = LocList()
    base_locs = getattr(base, "locs", [None] * len(base))
    indexes = range(len(base)) if keep is None else keep
    for i in indexes:
        out.append(base[i])
        out.locs.append(base_locs[i])
    out.extend(over)
    out.locs.extend(getattr(over, "locs", [None] * len(over)))
    return out


def _merge_unique(base: list, over: list, key: str) -> LocList:
    unique = {"ports": _port_key, "volumes": _volume_key, "configs": _file_key,
              "secrets": _file_key, "expose": str}[key]
    over_keys = {unique(item) for item in over}
    keep = [i for i, item in enumerate(base) if unique(item) not in over_keys]
    return _concat(base, over, keep)


def as_mapping(value: Any, key: str) -> Any:
    if not isinstance(value, list):
        return value
    out = LocDict()
    for item, loc in zip(value, getattr(value, "locs", [None] * len(value)), strict=False):
        text = str(item)
        if key in ("depends_on", "networks"):
            name, entry = text, LocDict() if key == "networks" else LocDict(
                condition="service_started")
        else:
            sep = ":" if key == "extra_hosts" and "=" not in text else "="
            name, has, rest = text.partition(sep)
            entry = rest if has else None
        out[name] = entry
        if loc:
            out.locs[name] = loc
    return out


def _port_key(item: Any) -> tuple:
    if isinstance(item, dict):
        return (str(item.get("host_ip", "")), str(item.get("published", "")),
                str(item.get("target")), item.get("protocol", "tcp"))
    try:
        port = parse_port(str(item))
    except ValueError:
        return (str(item),)
    return (port["host_ip"] or "", port["published"] or "", str(port["target"]), port["protocol"])


def _volume_key(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("target"))
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _file_key(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("target") or item.get("source"))
    return str(item)
