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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .audit_chain import GENESIS, ChainBreak


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


def check_against(entries: Iterable[Mapping[str, Any]],
                  checkpoints: list[Checkpoint]) -> tuple[int, ChainBreak | None]:
    """Walk the entries (oldest first) against the checkpoints: (entries seen, first break).

    Each checkpoint's head must be the hash of the entry at its count. A chain shorter than
    the latest checkpoint lost its newest entries (or all of them).
    """
    wanted: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        wanted.setdefault(checkpoint.count, checkpoint)
    seen = 0
    for entry in entries:
        seen += 1
        checkpoint = wanted.get(seen)
        if checkpoint is not None and entry["hash"] != checkpoint.head:
            return seen, ChainBreak(entry["id"], (
                f"it is entry {seen}, whose hash the checkpoint of {checkpoint.at} recorded "
                f"as {checkpoint.head[:12]}...; the chain was rewritten from here or before"))
    latest = checkpoints[-1] if checkpoints else None
    if latest is not None and seen < latest.count:
        return seen, ChainBreak(None, (
            f"the log has {seen} entries but the checkpoint of {latest.at} counted "
            f"{latest.count}: the newest {latest.count - seen} were removed"))
    return seen, None
