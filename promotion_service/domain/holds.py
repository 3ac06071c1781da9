"""Holds: automatic promotion into an environment waits until someone lifts the hold.

A rollback (the service's, the rollback job's, or an old deploy job run again) and a manual
promotion of an older image put one on, so the environment does not move forward again by
itself. The gate names it: who, when, why, and what lifts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .policy import Reason


@dataclass(frozen=True)
class Hold:
    """Who held the environment, when and why."""

    reason: str
    by: str
    since: datetime

    def to_dict(self, lift: str) -> dict[str, str]:
        """The gate's `hold` field: the hold and what lifts it."""
        return {"reason": self.reason, "by": self.by, "since": _iso(self.since), "lift": lift}


def lift_instructions(project_id: int, environment: str) -> str:
    """What lifts a hold, said once for the gate and the docs."""
    return (f"a release-manager or admin lifts it (DELETE /api/v1/projects/{project_id}/"
            f"environments/{environment}/hold), or promotes an image by hand (POST "
            "/api/v1/promotions)")


def held(hold: Hold, environment: str, lift: str) -> Reason:
    """The gate's reason while automatic promotion into the environment is held."""
    return Reason(
        "held",
        f"{environment} is held since {_iso(hold.since)} by {hold.by}: {hold.reason}; nothing "
        "is promoted into it automatically (approvals given meanwhile are kept and count once "
        "the hold is lifted)",
        lift,
        {"by": hold.by, "since": _iso(hold.since), "reason": hold.reason},
    )


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
