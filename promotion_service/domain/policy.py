"""Environment policies and the gate: may this release go into that environment now?"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .actor import ROLES
from .durations import format_duration, parse_duration
from .releases import label

SEVERITIES = ("low", "medium", "high", "critical")
MAX_SEVERITY_CHOICES = ("none", *SEVERITIES)
POLICY_KEYS = {
    "auto_promote", "promote_on_approval", "required_approvals", "approver_roles", "four_eyes",
    "approval_ttl", "min_soak", "max_severity", "freeze_windows",
}


class PolicyError(ValueError):
    """A policy document is wrong; the message names the field and what would be right."""


@dataclass(frozen=True)
class FreezeWindow:
    """No promotion into the environment between start and end (UTC)."""

    start: datetime
    end: datetime
    reason: str = ""

    def covers(self, now: datetime) -> bool:
        """True while the freeze is on."""
        return self.start <= now < self.end


@dataclass(frozen=True)
class EnvironmentPolicy:
    """What an image needs before it may enter one environment."""

    auto_promote: bool = False
    promote_on_approval: bool = True
    required_approvals: int = 0
    approver_roles: tuple[str, ...] = ("approver", "release-manager", "admin")
    four_eyes: bool = False
    approval_ttl_seconds: int = 0
    min_soak_seconds: int = 0
    max_severity: str | None = None
    freeze_windows: tuple[FreezeWindow, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "policy") -> EnvironmentPolicy:
        """Build from a policy-file/API mapping, naming any wrong field."""
        data = dict(data or {})
        unknown = sorted(set(data) - POLICY_KEYS)
        if unknown:
            known = ", ".join(sorted(POLICY_KEYS))
            raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {known}")
        try:
            return cls(
                auto_promote=_bool(data, "auto_promote", False, where),
                promote_on_approval=_bool(data, "promote_on_approval", True, where),
                required_approvals=_count(data.get("required_approvals", 0), where),
                approver_roles=_roles(data.get("approver_roles"), where),
                four_eyes=_bool(data, "four_eyes", False, where),
                approval_ttl_seconds=parse_duration(data.get("approval_ttl"),
                                                    f"{where}.approval_ttl"),
                min_soak_seconds=parse_duration(data.get("min_soak"), f"{where}.min_soak"),
                max_severity=_severity(data.get("max_severity"), where),
                freeze_windows=_windows(data.get("freeze_windows") or (), where),
            )
        except PolicyError:
            raise
        except ValueError as exc:
            raise PolicyError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the database and shown by the API."""
        return {
            "auto_promote": self.auto_promote,
            "promote_on_approval": self.promote_on_approval,
            "required_approvals": self.required_approvals,
            "approver_roles": list(self.approver_roles),
            "four_eyes": self.four_eyes,
            "approval_ttl": self.approval_ttl_seconds,
            "min_soak": self.min_soak_seconds,
            "max_severity": self.max_severity,
            "freeze_windows": [
                {"start": _iso(w.start), "end": _iso(w.end), "reason": w.reason}
                for w in self.freeze_windows
            ],
        }


@dataclass(frozen=True)
class Approval:
    """An approval or rejection still standing (withdrawn ones are not passed in)."""

    actor: str
    role: str
    decision: str  # "approve" | "reject"
    created_at: datetime
    expires_at: datetime | None = None
    comment: str = ""


@dataclass(frozen=True)
class Stop:
    """An emergency stop on the environment's name, across projects."""

    reason: str
    actor: str
    since: datetime


@dataclass(frozen=True)
class RolledBack:
    """The release was rolled back out of an earlier environment (and not rolled forward)."""

    environment: str
    at: datetime
    by: str
    reason: str

    @property
    def described(self) -> str:
        """'rolled back out of staging at <when>Z by rm: why', as every refusal says it."""
        return (f"rolled back out of {self.environment} at {_iso(self.at)} by {self.by}"
                + (f": {self.reason}" if self.reason else ""))


@dataclass(frozen=True)
class MemberFacts:
    """One image of the release: whether it is revoked, and its latest scan (if any)."""

    name: str
    digest: str
    built: bool = True  # scans are required of built members only
    revoked: bool = False
    revoked_reason: str = ""
    scan_counts: Mapping[str, int] | None = None
    scan_findings: tuple[Mapping[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """How a reason names the member: worker@sha256:<12 hex>."""
        return label(self.name, self.digest)


@dataclass(frozen=True)
class GateFacts:
    """Everything the gate needs to know, read from storage by the caller."""

    environment: str
    now: datetime
    previous_environment: str | None = None
    verified_in_previous_at: datetime | None = None
    members: tuple[MemberFacts, ...] = ()
    approvals: tuple[Approval, ...] = ()
    # four-eyes: who wrote the commit, ran its pipeline or registered the release (persons)
    image_authors: frozenset[str] = frozenset()
    stops: tuple[Stop, ...] = ()
    rollback: bool = False
    rolled_back: RolledBack | None = None


@dataclass(frozen=True)
class Reason:
    """Why the gate says no: what is missing and what would satisfy it."""

    code: str
    message: str
    satisfy: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        return {"code": self.code, "message": self.message, "satisfy": self.satisfy,
                "details": dict(self.details)}


@dataclass(frozen=True)
class Decision:
    """The gate's answer."""

    allowed: bool
    reasons: tuple[Reason, ...]


def evaluate(policy: EnvironmentPolicy, facts: GateFacts) -> Decision:
    """Every rule of the environment's policy, each failing one as a reason."""
    reasons: list[Reason] = []
    reasons += _revocation(facts)
    if not facts.rollback:
        reasons += _rolled_back(facts)
        reasons += _stops(facts)
        reasons += _freezes(policy, facts)
        reasons += _scan(policy, facts)
        reasons += _previous(policy, facts)
        reasons += _approvals(policy, facts)
    return Decision(allowed=not reasons, reasons=tuple(reasons))


def counted_approvals(policy: EnvironmentPolicy, facts: GateFacts) -> list[Approval]:
    """Approvals that count toward the policy's required number: one per person (N of M are
    N different people, however many tokens one of them holds)."""
    counted: dict[str, Approval] = {}
    for approval in facts.approvals:
        if approval.decision == "approve" and _counts(approval, policy, facts):
            counted.setdefault(approval.actor.casefold(), approval)
    return list(counted.values())


def _revocation(facts: GateFacts) -> Iterable[Reason]:
    for member in facts.members:
        if member.revoked:
            yield Reason(
                "revoked",
                f"{member.label} was revoked: {member.revoked_reason or 'no reason given'}",
                "build and register a new release without it; a release with a revoked image "
                "cannot go anywhere",
                {"member": member.name},
            )


def _rolled_back(facts: GateFacts) -> Iterable[Reason]:
    gone = facts.rolled_back
    if gone is None:
        return
    yield Reason(
        "rolled_back",
        f"the release was {gone.described}",
        f"promote a newer release, or roll this one forward in {gone.environment} (an "
        "explicit promotion there, with a reason) and verify it",
        {"environment": gone.environment, "at": _iso(gone.at), "by": gone.by},
    )


def _stops(facts: GateFacts) -> Iterable[Reason]:
    for stop in facts.stops:
        yield Reason(
            "emergency_stop",
            f"promotion into {facts.environment} is stopped since {_iso(stop.since)} by "
            f"{stop.actor}: {stop.reason}",
            "a release manager or admin lifts the stop (DELETE /api/v1/stops/<id>)",
            {"since": _iso(stop.since), "by": stop.actor},
        )


def _freezes(policy: EnvironmentPolicy, facts: GateFacts) -> Iterable[Reason]:
    for window in policy.freeze_windows:
        if window.covers(facts.now):
            yield Reason(
                "freeze_window",
                f"{facts.environment} is frozen until {_iso(window.end)}"
                + (f": {window.reason}" if window.reason else ""),
                f"wait until {_iso(window.end)} (the freeze ends)",
                {"until": _iso(window.end)},
            )


def _scan(policy: EnvironmentPolicy, facts: GateFacts) -> Iterable[Reason]:
    if policy.max_severity is None:
        return
    too_severe = _above(policy.max_severity)
    for member in facts.members:
        if not member.built:
            continue
        if member.scan_counts is None:
            yield Reason(
                "scan_missing",
                f"no scan is recorded for {member.label}",
                "record a scan result (docker-cd scan, or POST /api/v1/scans)",
                {"member": member.name},
            )
            continue
        over = {s: int(member.scan_counts.get(s, 0) or 0) for s in too_severe}
        over = {s: n for s, n in over.items() if n > 0}
        if over:
            counted = ", ".join(f"{n} {s}" for s, n in sorted(over.items(), key=_severity_rank))
            ids = [f.get("id") for f in member.scan_findings if f.get("severity") in over][:10]
            yield Reason(
                "scan_failed",
                f"{member.label} has {counted} finding(s); {facts.environment} allows at most "
                f"'{policy.max_severity}'" + (f" (e.g. {', '.join(map(str, ids))})" if ids
                                             else ""),
                "fix the findings and build a new image, or revoke the image",
                {"counts": over, "findings": ids, "member": member.name},
            )


def _previous(policy: EnvironmentPolicy, facts: GateFacts) -> Iterable[Reason]:
    prev = facts.previous_environment
    if prev is None:
        return
    if facts.verified_in_previous_at is None:
        yield Reason(
            "not_verified",
            f"the image has not passed verification in {prev}",
            f"deploy it to {prev} and report a passed verification there",
            {"environment": prev},
        )
        return
    ready_at = facts.verified_in_previous_at + timedelta(seconds=policy.min_soak_seconds)
    if facts.now < ready_at:
        left = (ready_at - facts.now).total_seconds()
        yield Reason(
            "soak_time",
            f"the image must soak in {prev} for {format_duration(policy.min_soak_seconds)}; "
            f"{format_duration(left)} left",
            f"wait until {_iso(ready_at)}",
            {"environment": prev, "remaining_seconds": int(left) + 1, "until": _iso(ready_at)},
        )


def _approvals(policy: EnvironmentPolicy, facts: GateFacts) -> Iterable[Reason]:
    for rejection in (a for a in facts.approvals if a.decision == "reject"):
        yield Reason(
            "rejected",
            f"{rejection.actor} ({rejection.role}) rejected it"
            + (f": {rejection.comment}" if rejection.comment else ""),
            f"{rejection.actor} or a release manager withdraws the rejection",
            {"by": rejection.actor},
        )
    need = policy.required_approvals
    if need <= 0:
        return
    have = counted_approvals(policy, facts)
    if len(have) >= need:
        return
    roles = " or ".join(policy.approver_roles)
    excluded = sorted(facts.image_authors) if policy.four_eyes else []
    by = f" by someone other than {', '.join(excluded)} (four-eyes)" if excluded else ""
    yield Reason(
        "approvals_missing",
        f"{len(have)} of {need} approval(s) for {facts.environment}",
        f"{need - len(have)} more approval(s) from role {roles}{by}",
        {"have": len(have), "need": need, "roles": list(policy.approver_roles),
         "excluded": excluded, "approved_by": [a.actor for a in have]},
    )


def _counts(approval: Approval, policy: EnvironmentPolicy, facts: GateFacts) -> bool:
    if approval.role not in policy.approver_roles:
        return False
    if policy.four_eyes and approval.actor.casefold() in facts.image_authors:
        return False
    if approval.expires_at is not None and approval.expires_at <= facts.now:
        return False
    ttl = policy.approval_ttl_seconds
    return not (ttl and approval.created_at + timedelta(seconds=ttl) <= facts.now)


def _above(max_severity: str) -> tuple[str, ...]:
    if max_severity == "none":
        return (*SEVERITIES, "unknown")
    return SEVERITIES[SEVERITIES.index(max_severity) + 1:]


def _severity_rank(item: tuple[str, int]) -> int:
    return -SEVERITIES.index(item[0]) if item[0] in SEVERITIES else 1


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _bool(data: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise PolicyError(f"{where}.{key}: expected true or false, got {value!r}")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(
            f"{where}.required_approvals: expected a whole number >= 0, got {value!r}")
    return value


def _roles(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return EnvironmentPolicy.approver_roles
    if isinstance(value, str):
        value = [value]
    bad = [r for r in value if r not in ROLES or r == "ci"]
    if bad or not value:
        raise PolicyError(
            f"{where}.approver_roles: {bad or value!r} not allowed; choose from approver, "
            "release-manager, admin"
        )
    return tuple(value)


def _severity(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if value not in MAX_SEVERITY_CHOICES:
        choices = ", ".join(MAX_SEVERITY_CHOICES)
        raise PolicyError(f"{where}.max_severity: expected one of {choices}, got {value!r}")
    return value


def _windows(value: Any, where: str) -> tuple[FreezeWindow, ...]:
    if not isinstance(value, list | tuple):
        raise PolicyError(f"{where}.freeze_windows: expected a list of {{start, end, reason}}")
    windows = []
    for i, item in enumerate(value):
        here = f"{where}.freeze_windows[{i}]"
        if not isinstance(item, Mapping) or not {"start", "end"} <= set(item):
            raise PolicyError(f"{here}: expected a mapping with start and end (ISO 8601, UTC)")
        start, end = _moment(item["start"], f"{here}.start"), _moment(item["end"], f"{here}.end")
        if end <= start:
            raise PolicyError(f"{here}: end must be after start")
        windows.append(FreezeWindow(start, end, str(item.get("reason", ""))))
    return tuple(windows)


def _moment(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise PolicyError(
                f"{where}: expected an ISO 8601 time like 2026-12-24T00:00:00Z") from exc
    if moment.tzinfo is not None:
        try:
            moment = (moment - moment.utcoffset()).replace(tzinfo=None)
        except OverflowError as exc:
            raise PolicyError(f"{where}: {value!r} is out of range in UTC") from exc
    return moment
