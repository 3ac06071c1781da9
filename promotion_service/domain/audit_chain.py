"""The audit log's hash chain: each entry carries the hash of the one before."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64
HASHED_FIELDS = (
    "at", "actor", "role", "action", "subject_type", "subject_id", "before", "after",
    "request_id", "source_ip",
)


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON."""
    body = {k: entry.get(k) for k in HASHED_FIELDS}
    canonical = _CANONICAL.encode(body)
    return hashlib.sha256((prev_hash + "\n" + canonical).encode()).hexdigest()


# what json.dumps(sort_keys=True, separators=(",", ":"), default=str) builds on every call
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def stored_canonical(fields: Sequence[Any]) -> bytes:
    """The canonical JSON `entry_hash` hashes, of an entry as stored: the HASHED_FIELDS'
    values in that order, with `before` and `after` as their JSON text.

    orjson reads and writes it several times faster than the json module, and writes the
    same bytes for what a JSON text can hold, except floats (`1e16`, not `1e+16`), non-ASCII
    and DEL (raw, not `\\u` escapes); and it reads integers past 64 bits as floats. An entry
    with any of these takes json's path.
    """
    at, actor, role, action, subject_type, subject_id, before, after, request_id, ip = fields
    try:
        before, after = _loads(before), _loads(after)
        if _floatless(before) and _floatless(after):
            text = orjson.dumps({
                "action": action, "actor": actor, "after": after, "at": at, "before": before,
                "request_id": request_id, "role": role, "source_ip": ip,
                "subject_id": subject_id, "subject_type": subject_type,
            }, option=orjson.OPT_SORT_KEYS)
            if text.isascii() and b"\x7f" not in text:
                return text
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    body = dict(zip(HASHED_FIELDS, fields, strict=True))
    body["before"], body["after"] = _json_loads(fields[6]), _json_loads(fields[7])
    return _CANONICAL.encode(body).encode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _json_loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _floatless(value: Any) -> bool:
    if type(value) is dict:
        value = value.values()
    elif type(value) is not list:
        return type(value) is not float
    kinds = set(map(type, value))
    if float in kinds:
        return False
    return (dict not in kinds and list not in kinds) or all(map(_floatless, value))


@dataclass(frozen=True)
class ChainBreak:
    """The first entry whose stored hashes do not match its content."""

    entry_id: Any
    problem: str


REMOVED = "its prev_hash does not match the entry before it (an entry was removed or reordered)"
EDITED = "its content does not match its hash (it was edited)"

