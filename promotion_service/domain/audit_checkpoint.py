"""Checkpoints of the audit chain: its length and head hash, signed with a key the database
never holds, kept outside the database (an append-only file).

The hash chain alone shows an entry edited or removed in the middle; it cannot show the
newest entries removed, every entry removed, or the chain rewritten from some entry on with
fresh hashes: all of that leaves a valid chain. A checkpoint written earlier can: it says how
long the chain was then and what its last hash was, and no one without the key can forge one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .audit_chain import EDITED, GENESIS, REMOVED, ChainBreak, stored_canonical


@dataclass(frozen=True)
class Checkpoint:
    """The chain had `count` entries, the last with hash `head`, at time `at` (UTC, ISO)."""

    count: int
    head: str
    at: str
    mac: str = ""

    def signed(self, key: bytes) -> Checkpoint:
        """This checkpoint with its MAC."""
        return Checkpoint(self.count, self.head, self.at, _mac(key, self))

    def to_line(self) -> str:
        """One line of the checkpoint file."""
        return json.dumps({"count": self.count, "head": self.head, "at": self.at,
                           "mac": self.mac}, sort_keys=True) + "\n"


def _mac(key: bytes, checkpoint: Checkpoint) -> str:
    message = f"docker-cd audit checkpoint\n{checkpoint.count}\n{checkpoint.head}\n{checkpoint.at}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def head_of(count: int, last_hash: str | None) -> str:
    """The head hash of a chain of `count` entries (GENESIS for an empty one)."""
    return last_hash if count else GENESIS


def read_checkpoints(lines: Iterable[str], key: bytes) -> tuple[list[Checkpoint], str | None]:
    """The file's checkpoints, and the first problem with them (a line not signed with the key,
    or a chain that got shorter between two checkpoints), if any."""
    checkpoints: list[Checkpoint] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            checkpoint = Checkpoint(int(data["count"]), str(data["head"]), str(data["at"]),
                                    str(data["mac"]))
        except (ValueError, KeyError, TypeError):
            return checkpoints, f"checkpoint line {number} is not a checkpoint"
        if not hmac.compare_digest(checkpoint.mac, _mac(key, checkpoint)):
            return checkpoints, (f"checkpoint line {number} is not signed with the audit key "
                                 "(edited or forged)")
        if checkpoints and checkpoint.count < checkpoints[-1].count:
            return checkpoints, (f"checkpoint line {number} says {checkpoint.count} entries, "
                                 f"fewer than the {checkpoints[-1].count} of the line before")
        checkpoints.append(checkpoint)
    return checkpoints, None


def walk(rows: Iterable[Sequence[Any]], checkpoints: list[Checkpoint],
         start: tuple[int, str] | None = None,
         ) -> tuple[int, ChainBreak | None, ChainBreak | None]:
    """One pass over the stored entries, oldest first, checking the hash chain and the
    checkpoints together: (entries walked, the first chain break, the first checkpoint the
    log contradicts). Each row is the entry's id, prev_hash and hash, then its HASHED_FIELDS
    with `before` and `after` as their JSON text. The walk stops at a chain break.

    Each checkpoint's head must be the hash of the entry at its count. A chain shorter than
    the latest checkpoint lost its newest entries (or all of them).

    `start` (count, hash): the rows continue a chain of `count` entries whose last hash is
    `hash` (checked before), so the first row's prev_hash must be that hash; the count
    returned includes those `count` entries, and checkpoints are matched by position in the
    whole chain (those at or below `count` are not checked again).
    """
    seen, prev = start if start is not None else (0, GENESIS)
    due = iter([c for c in _first_per_count(checkpoints) if c.count > seen])
    wanted = next(due, None)
    contradicted = None
    sha256 = hashlib.sha256
    for entry_id, prev_hash, digest, *fields in rows:
        seen += 1
        if prev_hash != prev:
            return seen, ChainBreak(entry_id, REMOVED), contradicted
        if sha256(prev.encode() + b"\n" + stored_canonical(fields)).hexdigest() != digest:
            return seen, ChainBreak(entry_id, EDITED), contradicted
        prev = digest
        if wanted is not None and seen == wanted.count:
            if contradicted is None and digest != wanted.head:
                contradicted = ChainBreak(entry_id, (
                    f"it is entry {seen}, whose hash the checkpoint of {wanted.at} recorded "
                    f"as {wanted.head[:12]}...; the chain was rewritten from here or before"))
            wanted = next(due, None)
    latest = checkpoints[-1] if checkpoints else None
    if contradicted is None and latest is not None and seen < latest.count:
        contradicted = ChainBreak(None, (
            f"the log has {seen} entries but the checkpoint of {latest.at} counted "
            f"{latest.count}: the newest {latest.count - seen} were removed"))
    return seen, None, contradicted


def _first_per_count(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    """The first checkpoint of each count above 0, in order (read_checkpoints refuses a count
    that goes down)."""
    firsts: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        if checkpoint.count > 0:
            firsts.setdefault(checkpoint.count, checkpoint)
    return list(firsts.values())
