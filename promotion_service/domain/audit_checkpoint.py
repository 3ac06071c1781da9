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


class CheckpointWalk:
    """The entries (oldest first) against the checkpoints, fed one at a time, so that a
    single pass over the log checks its hash chain and its checkpoints together.

    Each checkpoint's head must be the hash of the entry at its count. A chain shorter than
    the latest checkpoint lost its newest entries (or all of them).
    """

    def __init__(self, checkpoints: list[Checkpoint]) -> None:
        self.wanted: dict[int, Checkpoint] = {}
        for checkpoint in checkpoints:
            self.wanted.setdefault(checkpoint.count, checkpoint)
        self.latest = checkpoints[-1] if checkpoints else None
        self.seen = 0
        self.broken: ChainBreak | None = None

    def see(self, entry: Mapping[str, Any]) -> None:
        """The next entry; the first one that contradicts a checkpoint is kept."""
        self.seen += 1
        checkpoint = self.wanted.get(self.seen)
        if self.broken is None and checkpoint is not None and entry["hash"] != checkpoint.head:
            self.broken = ChainBreak(entry["id"], (
                f"it is entry {self.seen}, whose hash the checkpoint of {checkpoint.at} "
                f"recorded as {checkpoint.head[:12]}...; the chain was rewritten from here or "
                "before"))

    def finish(self) -> ChainBreak | None:
        """The first break, once every entry was seen."""
        latest = self.latest
        if self.broken is None and latest is not None and self.seen < latest.count:
            return ChainBreak(None, (
                f"the log has {self.seen} entries but the checkpoint of {latest.at} counted "
                f"{latest.count}: the newest {latest.count - self.seen} were removed"))
        return self.broken


def check_against(entries: Iterable[Mapping[str, Any]],
                  checkpoints: list[Checkpoint]) -> tuple[int, ChainBreak | None]:
    """Walk the entries (oldest first) against the checkpoints: (entries seen, first break)."""
    walk = CheckpointWalk(checkpoints)
    for entry in entries:
        walk.see(entry)
        if walk.broken is not None:
            break
    return walk.seen, walk.finish()
