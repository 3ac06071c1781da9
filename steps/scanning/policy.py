"""The scan policy: which findings stop an image; which the team accepted, why, until when.

- A finding at or above the threshold fails the scan (with `fixable_only`, only vulnerabilities
  that have a fixed version do; misconfigurations are judged by the threshold alone).
- A secret fails the scan whatever its severity, unless secrets are allowed.
- An ignore entry (`.docker-cd-ignore.yml`) takes a finding out of the verdict: it names the
  finding's id, says why, may expire, and may be scoped to a package or a path. An expired
  entry ignores nothing (and the verdict says so, so the log can).

Plain Python: the step loads the file and passes today's date in.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from steps.scanning.findings import (
    SECRET,
    SEVERITIES,
    VULNERABILITY,
    Finding,
    count_by_severity,
    severity_rank,
)

THRESHOLDS = (*SEVERITIES, "NONE")  # NONE: no severity fails the scan (secrets still do)
IGNORE_KEYS = ("id", "reason", "expires", "package", "path")


class PolicyError(ValueError):
    """A policy input (the ignore file) that is wrong; the message names the entry and the key."""


@dataclass(frozen=True)
class IgnoreRule:
    """One accepted finding: its id, why, until when, and where (package and/or path glob)."""

    id: str
    reason: str
    expires: date | None = None
    package: str | None = None
    path: str | None = None

    def expired(self, today: date) -> bool:
        """Valid through its expiry date; expired from the day after."""
        return self.expires is not None and today > self.expires

    def matches(self, finding: Finding) -> bool:
        """Same id, and within the scope when one is given."""
        if finding.id.upper() != self.id.upper():
            return False
        if self.package is not None and finding.package != self.package:
            return False
        if self.path is not None:
            pattern = self.path.lstrip("/")
            places = {p.lstrip("/") for p in (finding.path, finding.target) if p}
            if not any(fnmatch.fnmatchcase(p, pattern) for p in places):
                return False
        return True

    def describe(self) -> str:
        """`CVE-1 (package openssl, path usr/lib/*)` for the log."""
        scope = [f"package {self.package}"] if self.package else []
        scope += [f"path {self.path}"] if self.path else []
        return self.id + (f" ({', '.join(scope)})" if scope else "")


@dataclass(frozen=True)
class Policy:
    """What fails a scan."""

    threshold: str = "HIGH"
    fixable_only: bool = False
    allow_secrets: bool = False
    ignores: tuple[IgnoreRule, ...] = ()


@dataclass(frozen=True)
class Ignored:
    """A finding the team accepted, and the entry that accepted it."""

    finding: Finding
    rule: IgnoreRule


@dataclass(frozen=True)
class ExpiredRule:
    """An ignore entry past its date, and the findings it would have ignored."""

    rule: IgnoreRule
    would_ignore: tuple[Finding, ...]


@dataclass(frozen=True)
class Verdict:
    """The policy's answer for one scan."""

    policy: Policy
    remaining: tuple[Finding, ...]   # every finding not ignored, most severe first
    failing: tuple[Finding, ...]     # the ones that fail the scan
    ignored: tuple[Ignored, ...]
    expired: tuple[ExpiredRule, ...]
    unused: tuple[IgnoreRule, ...]   # valid entries that matched nothing (maybe fixed: clean up)

    @property
    def passed(self) -> bool:
        return not self.failing

    def counts(self) -> dict[str, int]:
        """Remaining findings per severity, every severity present."""
        return count_by_severity(self.remaining)

    def reasons(self) -> list[str]:
        """Why the scan failed, one line per kind of failure."""
        secrets = [f for f in self.failing if f.type == SECRET]
        others = [f for f in self.failing if f.type != SECRET]
        reasons = []
        if secrets:
            reasons.append(f"{len(secrets)} secret(s) found in the image (e.g. {secrets[0].title} "
                           f"in {secrets[0].location}); remove them from the image and rotate "
                           "them, or accept one in the ignore file")
        if others:
            what = "fixable finding(s)" if self.policy.fixable_only else "finding(s)"
            per = ", ".join(f"{n} {s}" for s, n in count_by_severity(others).items() if n)
            reasons.append(f"{len(others)} {what} at or above {self.policy.threshold} ({per})")
        return reasons


def evaluate(findings: Iterable[Finding], policy: Policy, today: date) -> Verdict:
    """Apply the ignore entries, then the threshold, fixable-only and secret rules."""
    findings = sorted(findings, key=lambda f: (-f.rank, f.type, f.id, f.package))
    live = [r for r in policy.ignores if not r.expired(today)]
    dead = [r for r in policy.ignores if r.expired(today)]
    by_id: dict[str, list[IgnoreRule]] = {}
    for rule in live:
        by_id.setdefault(rule.id.upper(), []).append(rule)
    remaining, ignored, used = [], [], set()
    for finding in findings:
        rule = next((r for r in by_id.get(finding.id.upper(), ()) if r.matches(finding)), None)
        if rule is None:
            remaining.append(finding)
        else:
            ignored.append(Ignored(finding, rule))
            used.add(rule)
    failing = [f for f in remaining if _fails(f, policy)]
    expired = [ExpiredRule(r, tuple(f for f in findings if r.matches(f))) for r in dead]
    return Verdict(policy=policy, remaining=tuple(remaining), failing=tuple(failing),
                   ignored=tuple(ignored), expired=tuple(expired),
                   unused=tuple(r for r in live if r not in used))


def _fails(finding: Finding, policy: Policy) -> bool:
    if finding.type == SECRET:
        return not policy.allow_secrets
    if policy.threshold == "NONE" or finding.rank < severity_rank(policy.threshold):
        return False
    return not (policy.fixable_only and finding.type == VULNERABILITY and not finding.fixable)


# --- the ignore file ---------------------------------------------------------------------

def load_ignore_file(path: str | Path) -> tuple[IgnoreRule, ...]:
    """Read `.docker-cd-ignore.yml`; an empty file ignores nothing."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PolicyError(f"{path} is not valid YAML: {e}") from e
    return parse_ignore_rules(data, str(path))


def parse_ignore_rules(data: Any, source: str = "ignore file") -> tuple[IgnoreRule, ...]:
    """`{ignore: [{id, reason, expires?, package?, path?}, ...]}` into rules; strict on keys,
    since a misspelt `expires` would silently make an entry permanent."""
    if data is None:
        return ()
    if not isinstance(data, Mapping) or set(data) - {"ignore"}:
        raise PolicyError(f"{source}: expected a mapping with one key, 'ignore', holding a list "
                          "of entries (id, reason, expires, package, path)")
    entries = data.get("ignore") or []
    if not isinstance(entries, list):
        raise PolicyError(f"{source}: 'ignore' must be a list of entries")
    return tuple(_rule(entry, f"{source}: ignore[{i}]") for i, entry in enumerate(entries))


def _rule(entry: Any, where: str) -> IgnoreRule:
    if not isinstance(entry, Mapping):
        raise PolicyError(f"{where}: expected a mapping (id, reason, expires, package, path)")
    if entry.get("id"):
        where += f" ({entry['id']})"
    unknown = sorted(str(k) for k in set(entry) - set(IGNORE_KEYS))
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"an entry takes {', '.join(IGNORE_KEYS)}")
    for key in ("id", "reason"):
        if not str(entry.get(key) or "").strip():
            raise PolicyError(f"{where}: '{key}' is required"
                              + (" (say why the finding is accepted)" if key == "reason" else ""))
    for key in ("package", "path"):
        if key in entry and not str(entry.get(key) or "").strip():
            raise PolicyError(f"{where}: '{key}' is empty; remove it or give a value")
    return IgnoreRule(
        id=str(entry["id"]).strip(),
        reason=str(entry["reason"]).strip(),
        expires=_date(entry.get("expires"), where),
        package=str(entry["package"]).strip() if "package" in entry else None,
        path=str(entry["path"]).strip() if "path" in entry else None,
    )


def _date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):  # YAML reads 2027-01-31 as a date (a datetime is a date too)
        return value if type(value) is date else value.date()
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise PolicyError(f"{where}: 'expires' must be a date like 2027-01-31; "
                          f"got {value!r}") from None
