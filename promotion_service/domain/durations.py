"""Human durations in policy files ("90s", "10m", "2h", "3d")."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d{1,6})\s*([smhd]?)\s*$")
MAX_SECONDS = 999_999 * 86400  # times stay far inside what datetime can hold


def parse_duration(value: int | str | None, field: str) -> int:
    """Seconds from an int or a string like '10m'; ValueError names the field."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a duration like 90s, 10m, 2h or 3d, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= MAX_SECONDS:
            raise ValueError(f"{field}: a duration is 0 to {MAX_SECONDS} seconds, got {value}")
        return value
    match = _PATTERN.match(str(value))
    if not match:
        raise ValueError(f"{field}: expected a duration like 90s, 10m, 2h or 3d, got {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """A short readable duration for reasons ('7m 5s')."""
    seconds = max(0, round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return " ".join(parts)
