"""The release record: what reached an environment, kept on the target itself.

A release is recorded on the target (labels of a record object) so the target alone knows its
history: `docker-cd releases` and `docker-cd rollback` need neither the application's repo nor
the promotion service.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

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
    members: Mapping[str, str] = field(default_factory=dict)  # built member -> repository@digest
    release_id: int | None = None     # the promotion service's release (CD_RELEASE_ID)
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
