"""Compose value syntaxes: durations, byte sizes, short port syntax, env files, booleans,
commands and mappings written either way. Pure."""

from __future__ import annotations

import re
import shlex
from typing import Any

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def parse_duration(value: Any) -> float:
    """A Compose duration ("1m30s", "250ms", 10) in seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 10s or 500ms, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"expected a duration like 10s or 500ms, got {value!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION.findall(text))


_SIZE = re.compile(r"(?i)(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?")


def parse_size(value: Any) -> int:
    """A Compose byte size ("512m", "1g", 1048576) in bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f"expected a size like 256m or 1g, got {value!r}")
    power = "bkmgt".index((m.group(2) or "b").lower())
    return int(float(m.group(1)) * 1024 ** power)


def parse_port(text: str) -> dict[str, Any]:
    """Short port syntax ("8080:80", "127.0.0.1:8080:80/udp", "80") in long syntax."""
    spec, _, protocol = text.partition("/")
    if protocol not in ("", "tcp", "udp", "sctp"):
        raise ValueError(f"unknown protocol {protocol!r}")
    if spec.startswith("["):  # [::1]:8080:80
        host_ip, _, spec = spec[1:].partition("]:")
        parts = [host_ip, *spec.split(":")]
    else:
        parts = spec.split(":")
    if len(parts) == 1:
        host_ip, published, target = None, None, parts[0]
    elif len(parts) == 2:
        host_ip, (published, target) = None, parts
    elif len(parts) == 3:
        host_ip, published, target = parts
    else:
        raise ValueError(f"expected [HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL], got {text!r}")
    if not target.isdigit() or (published and not re.fullmatch(r"\d+(-\d+)?", published)):
        raise ValueError(f"expected [HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL], got {text!r}")
    return {"target": int(target), "published": published or None, "host_ip": host_ip or None,
            "protocol": protocol or "tcp", "mode": "ingress"}


def parse_env_file(text: str) -> dict[str, str]:
    """An env file (KEY=VALUE lines, # comments, optional quotes) as a mapping."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def as_list(value: Any) -> list:
    """A sequence value (nothing is an empty one)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def command(value: Any) -> list[str]:
    """A command as a list: a string is split the way a shell would."""
    return shlex.split(value) if isinstance(value, str) else [str(a) for a in value]


def true(value: Any) -> bool:
    """A Compose boolean, also as the text a variable gives (`"true"`, `"yes"`, `"on"`)."""
    return str(value).lower() in ("true", "yes", "on", "1") if isinstance(value, str) else \
        bool(value)


def false(value: Any) -> bool:
    """Said false explicitly (unlike a missing value)."""
    return str(value).lower() in ("false", "no", "off", "0") if isinstance(value, str) else \
        value is False


def scalar_text(value: Any) -> str:
    """A scalar as an environment value (booleans as Compose writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
