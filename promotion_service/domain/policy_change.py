"""What a policy change loosens: every way the new policy lets an image in more easily.

Loosening an environment's policy is an explicit act (the request says so, with a reason)
and is audited apart from a tightening; this module says whether a change loosens, and how.
"""

from __future__ import annotations

from datetime import datetime

from .durations import format_duration
from .policy import MAX_SEVERITY_CHOICES, EnvironmentPolicy


def loosenings(old: EnvironmentPolicy, new: EnvironmentPolicy, now: datetime) -> list[str]:
    """Each way `new` is looser than `old`, in words; empty when nothing loosens."""
    found: list[str] = []
    if new.auto_promote and not old.auto_promote:
        found.append("auto_promote false -> true")
    if new.promote_on_approval and not old.promote_on_approval:
        found.append("promote_on_approval false -> true")
    if new.required_approvals < old.required_approvals:
        found.append(f"required_approvals {old.required_approvals} -> {new.required_approvals}")
    added = sorted(set(new.approver_roles) - set(old.approver_roles))
    if added:
        found.append(f"approver_roles gain {', '.join(added)}")
    if old.four_eyes and not new.four_eyes:
        found.append("four_eyes true -> false")
    old_ttl, new_ttl = old.approval_ttl_seconds, new.approval_ttl_seconds
    if old_ttl and (not new_ttl or new_ttl > old_ttl):
        found.append(f"approval_ttl {format_duration(old_ttl)} -> "
                     f"{format_duration(new_ttl) if new_ttl else 'never'}")
    if new.min_soak_seconds < old.min_soak_seconds:
        found.append(f"min_soak {format_duration(old.min_soak_seconds)} -> "
                     f"{format_duration(new.min_soak_seconds)}")
    if _severity_rank(new.max_severity) > _severity_rank(old.max_severity):
        found.append(f"max_severity {old.max_severity or 'unset'} -> "
                     f"{new.max_severity or 'unset (no scan needed)'}")
    for window in old.freeze_windows:
        if window.end > now and not any(n.start <= window.start and n.end >= window.end
                                        for n in new.freeze_windows):
            found.append(f"freeze window {window.start:%Y-%m-%dT%H:%M}Z - "
                         f"{window.end:%Y-%m-%dT%H:%M}Z removed or shortened")
    return found


def _severity_rank(max_severity: str | None) -> int:
    """none (strictest) < low < ... < critical < unset (no scan needed at all)."""
    if max_severity is None:
        return len(MAX_SEVERITY_CHOICES)
    return MAX_SEVERITY_CHOICES.index(max_severity)
