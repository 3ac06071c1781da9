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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ..config import ConfigError
from ..db import write_transaction
from ..db.listing import Listing
from ..db.models import AuditVerdict, utcnow
from ..domain.actor import Actor
from ..domain.audit_chain import GENESIS, ChainBreak
from ..domain.audit_checkpoint import (
    Checkpoint,
    head_of,
    read_checkpoints,
    walk,
)
from ..store import audit, audit_verdicts, projects
from . import lookups

MIN_KEY_BYTES = 16
PAGE_WALK_LIMIT = 10_000  # entries the audit page checks now, at most (about 0.15 s)


@dataclass(frozen=True)
class Anchor:
    """Where checkpoints go, and the key that signs them."""

    path: Path
    key: bytes


@dataclass(frozen=True)
class Verdict:
    """What `audit verify` found: entries walked, checkpoints checked, the first problem;
    and, of a full walk, the last entry walked, its hash and when the walk began."""

    count: int
    checkpoints: int
    problem: ChainBreak | None
    through_id: int | None = None
    head_hash: str = GENESIS
    at: datetime | None = None


@dataclass(frozen=True)
class ChainState:
    """What the audit page says of the chain: the latest full verdict stored (`full`; None:
    the chain was never verified in full in the background), and what the page checked now:
    `checked_now` entries (those after the full verdict's last, else from the first) and
    `checkpoints_now` signed checkpoints; `more`: entries past those, left unchecked for the
    next full verify. `problem`: the first problem, the full verdict's (`problem_of_full`)
    or one found now."""

    full: AuditVerdict | None
    checked_now: int
    more: bool
    checkpoints_now: int
    problem: ChainBreak | None
    problem_of_full: bool = False


CHANGED_SINCE = ("the full verification ended on this entry, and its hash is no longer the "
                 "one it had then: it was edited or removed since")


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
    at, last = utcnow(), [None, GENESIS]

    def tracked(rows: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
        for row in rows:
            last[0], last[1] = row[0], row[2]
            yield row

    verdict = _checked(tracked(audit.stored_in_order(session)), anchor)
    return replace(verdict, through_id=last[0], head_hash=last[1], at=at)


def _checked(rows: Iterable[Sequence[Any]], anchor: Anchor | None,
             within: int | None = None) -> Verdict:
    """Walk these rows from the chain's first entry, with the anchor's checkpoints (those
    counting at most `within` entries, when the rows stop there though the log goes on)."""
    checkpoints: list[Checkpoint] = []
    problem = None
    if anchor is not None and anchor.path.exists():
        checkpoints, problem = read_checkpoints(_lines(anchor.path), anchor.key)
    if within is not None:
        checkpoints = [c for c in checkpoints if c.count <= within]
    count, broken, contradicted = walk(rows, checkpoints)
    if broken is not None or anchor is None:
        return Verdict(count, 0, broken)
    if not anchor.path.exists():
        return Verdict(count, 0, ChainBreak(None, f"the checkpoint file {anchor.path} is "
                                                  "missing"))
    if problem is not None:
        return Verdict(count, len(checkpoints), ChainBreak(None, problem))
    return Verdict(count, len(checkpoints), contradicted)


def record(session: Session, verdict: Verdict) -> None:
    """Store what a full verify found, in a write transaction of its own: run `verify` in a
    read session before, so that no lock is held while it walks."""
    with write_transaction(session):
        audit_verdicts.add(
            session, checked_at=verdict.at or utcnow(), entries=verdict.count,
            through_id=verdict.through_id, head_hash=verdict.head_hash,
            checkpoints=verdict.checkpoints,
            problem=verdict.problem.problem if verdict.problem is not None else None,
            problem_entry_id=(verdict.problem.entry_id
                              if verdict.problem is not None else None))


def seconds_since_full_verify(session: Session) -> float | None:
    """How long ago the latest stored full verify began (None: never)."""
    full = audit_verdicts.latest(session)
    return None if full is None else (utcnow() - full.checked_at).total_seconds()


def chain_state(session: Session, anchor: Anchor | None,
                limit: int | None = None) -> ChainState:
    """The audit page's view of the chain, at a cost that does not grow with the log: the
    latest full verdict stored, and a walk now of at most `limit` entries, those written
    after the entry it ended on, from the hash it recorded (and that entry's hash, still the
    same). Without a stored verdict, the walk starts at the first entry and checks the
    checkpoints it reaches, as `verify` does (all of them when the log is that short).
    `limit`: PAGE_WALK_LIMIT unless given."""
    limit = PAGE_WALK_LIMIT if limit is None else limit
    full = audit_verdicts.latest(session)
    if full is None:
        rows = audit.stored_after(session, None, limit + 1)
        more = len(rows) > limit
        verdict = _checked(rows[:limit], anchor, within=limit if more else None)
        return ChainState(None, verdict.count, more, verdict.checkpoints, verdict.problem)
    if full.problem is not None:
        return ChainState(full, 0, False, 0, ChainBreak(full.problem_entry_id, full.problem),
                          problem_of_full=True)
    if full.through_id is not None and audit.hash_of(session, full.through_id) != \
            full.head_hash:
        return ChainState(full, 0, False, 0, ChainBreak(full.through_id, CHANGED_SINCE))
    rows = audit.stored_after(session, full.through_id, limit + 1)
    more = len(rows) > limit
    count, broken, _ = walk(rows[:limit], [], start=(full.entries, full.head_hash))
    return ChainState(full, count - full.entries, more, 0, broken)


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
