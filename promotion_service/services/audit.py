"""The audit log: read it, check its hash chain, and anchor the chain outside the database.

Anchoring: checkpoints (the chain's length and head hash, with an HMAC under a key read from
PROMOTION_AUDIT_KEY_FILE, which the database never sees) appended to
PROMOTION_AUDIT_CHECKPOINT_FILE. The service only ever appends to that file; make it
append-only (`chattr +a`) or ship it off the host, so that whoever can rewrite the database
cannot rewrite the checkpoints too. See docs/promotion-service.md, "Audit log".
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ..config import ConfigError
from ..db.listing import Listing
from ..db.models import utcnow
from ..domain.actor import Actor
from ..domain.audit_chain import ChainBreak
from ..domain.audit_checkpoint import (
    Checkpoint,
    head_of,
    read_checkpoints,
    walk,
)
from ..store import audit, projects
from . import lookups

MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class Anchor:
    """Where checkpoints go, and the key that signs them."""

    path: Path
    key: bytes


@dataclass(frozen=True)
class Verdict:
    """What `audit verify` found: entries walked, checkpoints checked, the first problem."""

    count: int
    checkpoints: int
    problem: ChainBreak | None


def anchor_from_config(config: Mapping[str, Any]) -> Anchor | None:
    """The anchor PROMOTION_AUDIT_CHECKPOINT_FILE and PROMOTION_AUDIT_KEY_FILE name, if set."""
    path, key_file = config.get("AUDIT_CHECKPOINT_FILE"), config.get("AUDIT_KEY_FILE")
    if not path and not key_file:
        return None
    if not path or not key_file:
        missing = "PROMOTION_AUDIT_KEY_FILE" if path else "PROMOTION_AUDIT_CHECKPOINT_FILE"
        raise ConfigError(f"{missing} is not set: audit checkpoints need both "
                          "PROMOTION_AUDIT_CHECKPOINT_FILE and PROMOTION_AUDIT_KEY_FILE")
    try:
        key = Path(key_file).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"PROMOTION_AUDIT_KEY_FILE: cannot read {key_file}: "
                          f"{exc.strerror}") from exc
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"PROMOTION_AUDIT_KEY_FILE: the key in {key_file} is shorter than "
                          f"{MIN_KEY_BYTES} bytes; make one with "
                          "'head -c 32 /dev/urandom | base64 > FILE'")
    return Anchor(Path(path), key)


def write_checkpoint(session: Session, anchor: Anchor,
                     previous: Checkpoint | None = None) -> Checkpoint | None:
    """Append a checkpoint of the chain as it is now; None (nothing written) when the chain
    is still where the `previous` checkpoint saw it."""
    count, last_hash = audit.length_and_head(session)
    head = head_of(count, last_hash)
    if previous is not None and (previous.count, previous.head) == (count, head):
        return None
    checkpoint = Checkpoint(count, head,
                            utcnow().isoformat(timespec="seconds") + "Z").signed(anchor.key)
    # O_APPEND, never truncate: the file may be append-only (chattr +a); the lock keeps
    # two writers' lines whole
    fd = os.open(anchor.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, checkpoint.to_line().encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return checkpoint


def verify(session: Session, anchor: Anchor | None = None) -> Verdict:
    """Check the chain and (with an anchor) the chain against every checkpoint, in one pass
    that streams the log: memory stays flat however long it grows.

    A broken chain is reported first; then a missing or forged checkpoint file; then the
    first entry a checkpoint contradicts.
    """
    checkpoints: list[Checkpoint] = []
    problem = None
    if anchor is not None and anchor.path.exists():
        checkpoints, problem = read_checkpoints(_lines(anchor.path), anchor.key)
    count, broken, contradicted = walk(audit.stored_in_order(session), checkpoints)
    if broken is not None or anchor is None:
        return Verdict(count, 0, broken)
    if not anchor.path.exists():
        return Verdict(count, 0, ChainBreak(None, f"the checkpoint file {anchor.path} is "
                                                  "missing"))
    if problem is not None:
        return Verdict(count, len(checkpoints), ChainBreak(None, problem))
    return Verdict(count, len(checkpoints), contradicted)


def _lines(path: Path) -> Iterator[str]:
    with path.open() as lines:
        yield from lines


def listing(session: Session, actor: Actor, filters: dict[str, Any]) -> Listing:
    """Entries, newest first, filtered by subject, action or actor; a project-scoped token
    reads only the entries about its project (its images, promotions, deployments,
    environments and the project itself)."""
    project_id = None
    if actor.project is not None:
        found = projects.by_path(session, actor.project)
        project_id = found.id if found is not None else -1
    return audit.listing(session, filters, project_id)


def search(session: Session, actor: Actor, *, project: str | None = None,
           environment: str | None = None, who: str | None = None, action: str | None = None,
           since: str | None = None, until: str | None = None) -> Listing:
    """The audit page's listing: entries about a project (by path) and an environment name,
    by a person, of an action, in a time range; a project-scoped token reads its project's."""
    project = lookups.scoped_filters(actor, {"project": project}).get("project")
    project_id = None
    if project is not None:
        found = projects.by_path(session, project)
        project_id = found.id if found is not None else -1
    filters = {key: value for key, value in (("actor", who), ("action", action)) if value}
    return audit.listing(session, filters, project_id, environment=environment or None,
                         since=since or None, until=until or None)


def exported(session: Session, entries: Listing) -> Iterator[Any]:
    """Every entry of the listing, streamed in batches, for an export."""
    return audit.streamed(session, entries)
