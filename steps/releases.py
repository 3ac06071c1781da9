"""Releases: what reached an environment, kept on the target itself, and the `releases` step.

A release is recorded on the target (labels of a record object) so the target alone knows its
history: `docker-cd releases` and `docker-cd rollback` need neither the application's repo nor
the promotion service. The history rules (current release, rollback source) live here, in plain
Python, for every target.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from steps.errors import Refused, UsageError
from steps.runtime import Log, Result, Step
from steps.targets import (
    TARGET_OPTIONS,
    TargetSettings,
    open_target,
    project_name,
    validate_common,
)

SUCCEEDED = "succeeded"
FAILED = "failed"
ROLLED_BACK = "rolled-back"  # derived: a later rollback left this release


@dataclass(frozen=True)
class Release:
    """One deploy (or rollback) of a project to an environment."""

    id: str
    project: str
    environment: str
    target: str
    images: Mapping[str, str] = field(default_factory=dict)
    template: str = ""
    template_hash: str = ""
    config_hashes: Mapping[str, str] = field(default_factory=dict)
    commit: str | None = None
    pipeline_id: str | None = None
    pipeline_url: str | None = None
    created: str = ""
    previous: str | None = None
    status: str = "deploying"
    kind: str = "deploy"
    rollback_of: str | None = None
    message: str | None = None
    image: str | None = None          # the image being released (CD_IMAGE), for the service
    spec: Mapping[str, Any] | None = None

    def to_json(self) -> str:
        """The record as stored on the target (compact JSON)."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Release:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self) -> dict[str, Any]:
        """The record without the target-private spec: for the log, JSON output and the service."""
        data = asdict(self)
        data.pop("spec")
        return data

    def same_content(self, other: Release) -> bool:
        """Would deploying `other` change nothing?"""
        return (dict(self.images) == dict(other.images)
                and self.template_hash == other.template_hash
                and dict(self.config_hashes) == dict(other.config_hashes))


def new_release_id(now: datetime | None = None) -> str:
    """A release id that sorts by time: 20261126T171530Z-3f2a."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(2)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def history(records: Iterable[Release]) -> list[Release]:
    """Newest first, with releases that a later rollback left marked rolled-back."""
    ordered = sorted(records, key=lambda r: (r.created, r.id), reverse=True)
    left = {r.previous for r in ordered if r.kind == "rollback" and r.status == SUCCEEDED}
    return [replace(r, status=ROLLED_BACK) if r.id in left and r.status == SUCCEEDED else r
            for r in ordered]


def current(records: Iterable[Release]) -> Release | None:
    """The release serving now: the newest one that succeeded."""
    return next((r for r in sorted(records, key=lambda r: (r.created, r.id), reverse=True)
                 if r.status == SUCCEEDED), None)


def rollback_source(records: Iterable[Release], to: str | None = None) -> Release:
    """The release a rollback restores.

    Without `to`: the newest release before the current one that succeeded, was not itself left
    by a rollback, and differs from what runs now. With `to`: that release, if it succeeded.
    """
    records = list(records)
    now = current(records)
    if now is None:
        raise Refused("nothing to roll back: no release of this environment has succeeded yet")
    if to:
        chosen = next((r for r in records if r.id == to), None)
        if chosen is None:
            known = ", ".join(r.id for r in history(records)[:5])
            raise UsageError(f"no release {to!r} in this environment (recent: {known})", "to")
        if chosen.status != SUCCEEDED:
            raise Refused(f"release {to} {chosen.status}; a failed release is never a rollback "
                          "target")
        return chosen
    for release in history(records):
        if (release.created, release.id) >= (now.created, now.id):
            continue
        if release.status == SUCCEEDED and not release.same_content(now):
            return release
    raise Refused(f"nothing to roll back to: no release before {now.id} succeeded")


def table(releases: Iterable[Release]) -> str:
    """The history as a readable table for the log."""
    rows = [("RELEASE", "STATUS", "KIND", "CREATED", "COMMIT", "IMAGES")]
    for r in releases:
        images = ", ".join(f"{s}={_short(d)}" for s, d in sorted(r.images.items()))
        kind = f"rollback to {r.rollback_of}" if r.kind == "rollback" else r.kind
        rows.append((r.id, r.status, kind, r.created, (r.commit or "")[:12], images))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  "
                     + row[-1] for row in rows)


def _short(digest: str) -> str:
    repo, _, dig = digest.rpartition("@")
    return f"{repo.rsplit('/', 1)[-1]}@{dig[:19]}" if repo else digest[:19]


# ---------------------------------------------------------------- the `releases` step

@dataclass(frozen=True, kw_only=True)
class Settings(TargetSettings):
    pass


def validate(settings: Settings) -> None:
    validate_common(settings)


def execute(settings: Settings, log: Log) -> Result:
    project = project_name(settings)
    target = open_target(settings.target)
    found = history(target.records(project, settings.environment))
    if not found:
        log.info(f"No release of {project} in {settings.environment} on the {target.name} "
                 "target yet.")
    else:
        log.info(table(found))
    return Result(data={"project": project, "environment": settings.environment,
                        "releases": [r.summary() for r in found]})


STEP = Step(
    name="releases",
    help="List the releases of an environment, newest first, from the target alone.",
    options=TARGET_OPTIONS,
    settings=Settings,
    execute=execute,
    validate=validate,
)
