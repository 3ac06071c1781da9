"""The audit log's hash chain: each entry carries the hash of the one before."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class ChainBreak:
    """The first entry whose stored hashes do not match its content."""

    entry_id: Any
    problem: str


def verify_chain(entries: Iterable[Mapping[str, Any]]) -> ChainBreak | None:
    """Walk entries in order; None when intact, else the first break."""
    prev = GENESIS
    for entry in entries:
        if entry["prev_hash"] != prev:
            return ChainBreak(entry["id"], "its prev_hash does not match the entry before it "
                                           "(an entry was removed or reordered)")
        if entry_hash(prev, entry) != entry["hash"]:
            return ChainBreak(entry["id"], "its content does not match its hash (it was edited)")
        prev = entry["hash"]
    return None
