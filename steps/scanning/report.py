"""What a scan tells people and machines: the log's summary table, GitLab's container-scanning
report, the CD_SCAN_* outputs and the summary the promotion service records.

Plain Python: takes a ScanResult and the policy's Verdict, returns text and dicts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from steps.scanning.findings import (
    MISCONFIGURATION,
    SECRET,
    SEVERITIES,
    VULNERABILITY,
    Finding,
    ScanResult,
    count_by_severity,
)
from steps.scanning.policy import Verdict

GITLAB_SCHEMA_VERSION = "15.2.4"
GITLAB_SCHEMA_URL = ("https://gitlab.com/gitlab-org/security-products/security-report-schemas/"
                     "-/raw/v15.2.4/dist/container-scanning-report-format.json")
_ID_NAMESPACE = uuid.UUID("5d0c0c1e-8e0e-4c55-9c2a-6f0d0c5ca9a1")  # docker-cd's findings
_CVSS2 = re.compile(r"^(AV:[NAL]|AC:[LMH]|Au:[MSN]|[CIA]:[NPC])(/(AV:[NAL]|AC:[LMH]|Au:[MSN]|"
                    r"[CIA]:[NPC]|E:(U|POC|F|H|ND)|RL:(OF|TF|W|U|ND)|RC:(UC|UR|C|ND)))*$")
_CVSS3 = re.compile(r"^CVSS:3[.][01]/.{20,}$")
_CVSS4 = re.compile(r"^CVSS:4[.]0/AV:.{20,}$")
_TYPE_LABEL = {VULNERABILITY: "vuln", SECRET: "secret", MISCONFIGURATION: "misconfig"}


# --- the log -----------------------------------------------------------------------------

def summary_table(scan: ScanResult, verdict: Verdict, image: str, top: int = 10) -> str:
    """The readable summary: counts per severity, the top findings, what was ignored and why."""
    policy = verdict.policy
    status = "PASSED" if verdict.passed else "FAILED"
    lines = [
        f"Scan of {image or scan.artifact} ({scan.scanner_label}): {status}",
        f"policy: fail at {policy.threshold} and above"
        + (", fixable vulnerabilities only" if policy.fixable_only else "")
        + ("; secrets allowed" if policy.allow_secrets else "; any secret fails"),
        "",
    ]
    order = list(reversed(SEVERITIES))
    ignored = [i.finding for i in verdict.ignored]
    rows = [("", *order)]
    for label, group in (("found", [*verdict.remaining, *ignored]), ("ignored", ignored),
                         ("failing", verdict.failing)):
        counts = count_by_severity(group)
        rows.append((label, *(str(counts[s]) for s in order)))
    lines += _columns(rows, right=True)
    failing = set(verdict.failing)
    shown = list(verdict.failing[:top])
    shown += [f for f in verdict.remaining if f not in failing][:max(0, top - len(shown))]
    if shown:
        lines += ["", f"Top findings ({len(shown)} of {len(verdict.remaining)}):"]
        rows = [("", "SEVERITY", "TYPE", "ID", "PACKAGE", "INSTALLED", "FIXED", "WHERE",
                 "TITLE")]
        rows += [("FAIL" if f in failing else "", f.severity, _TYPE_LABEL.get(f.type, f.type),
                  f.id, _cut(f.package, 30), _cut(f.installed_version, 20),
                  _cut(f.fixed_version or "-", 20), _where(f), _cut(f.title, 60))
                 for f in shown]
        lines += ["  " + line for line in _columns(rows)]
    elif not verdict.ignored:
        lines += ["", "No findings."]
    if verdict.ignored:
        lines += ["", f"Ignored ({len(verdict.ignored)}), by the ignore file:"]
        for item in verdict.ignored:
            until = f" until {item.rule.expires.isoformat()}" if item.rule.expires else ""
            what = f"{item.finding.id} {item.finding.package or item.finding.location}".strip()
            lines.append(f"  {item.finding.severity} {what}{until}: {item.rule.reason}")
    if verdict.expired:
        lines += ["", "Expired ignore entries (they ignore nothing now):"]
        for item in verdict.expired:
            n = len(item.would_ignore)
            lines.append(f"  {item.rule.describe()} expired on {item.rule.expires}: "
                         f"{n} finding(s) it matched count again ({item.rule.reason})")
    if verdict.unused:
        lines += ["", "Ignore entries that matched nothing (remove them?): "
                  + ", ".join(r.describe() for r in verdict.unused)]
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _where(finding: Finding, width: int = 50) -> str:
    """An OS package's place is its OS ("image (debian 12.5)" -> "debian 12.5"); a long path
    keeps its start and its end (the parts that tell two copies apart and name the file)."""
    if not finding.path and finding.target.endswith(")") and "(" in finding.target:
        return finding.target[finding.target.rfind("(") + 1:-1]
    where = finding.location
    return where if len(where) <= width else where[:16] + "…" + where[-(width - 17):]


def _columns(rows: Sequence[Sequence[str]], right: bool = False) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) if right else c.ljust(w) for c, w in zip(row[1:], widths[1:],
                                                                      strict=True)]
        out.append("  ".join(cells).rstrip())
    return out


# --- outputs -----------------------------------------------------------------------------

def outputs(scan: ScanResult, verdict: Verdict, image: str) -> dict[str, str]:
    """CD_SCAN_* variables for the dotenv report and later jobs."""
    counts = verdict.counts()
    out = {
        "CD_SCAN_RESULT": "passed" if verdict.passed else "failed",
        "CD_SCAN_IMAGE": image,
        "CD_SCAN_SCANNER": scan.scanner_label,
        "CD_SCAN_THRESHOLD": verdict.policy.threshold,
    }
    out.update({f"CD_SCAN_{s}": str(n) for s, n in counts.items()})
    out.update({
        "CD_SCAN_SECRETS": str(sum(1 for f in verdict.remaining if f.type == SECRET)),
        "CD_SCAN_TOTAL": str(len(verdict.remaining)),
        "CD_SCAN_FAILING": str(len(verdict.failing)),
        "CD_SCAN_IGNORED": str(len(verdict.ignored)),
    })
    return out


def finding_dict(finding: Finding, failing: bool | None = None) -> dict[str, Any]:
    """A finding as JSON (never the secret itself: the model does not hold it)."""
    data = {"id": finding.id, "type": finding.type, "severity": finding.severity.lower(),
            "title": finding.title, "package": finding.package,
            "installed_version": finding.installed_version,
            "fixed_version": finding.fixed_version, "location": finding.location,
            "layer": finding.layer}
    if failing is not None:
        data["failing"] = failing
    return data


def details(scan: ScanResult, verdict: Verdict) -> dict[str, Any]:
    """The JSON file's `scan` part: counts, every remaining finding, ignored and expired entries."""
    failing = set(verdict.failing)
    return {
        "passed": verdict.passed,
        "reasons": verdict.reasons(),
        "counts": {s.lower(): n for s, n in verdict.counts().items()},
        "findings": [finding_dict(f, f in failing) for f in verdict.remaining],
        "ignored": [{**finding_dict(i.finding), "reason": i.rule.reason,
                     "expires": i.rule.expires.isoformat() if i.rule.expires else None}
                    for i in verdict.ignored],
        "expired_ignores": [{"id": e.rule.id, "expired": e.rule.expires.isoformat(),
                             "reason": e.rule.reason, "matched": len(e.would_ignore)}
                            for e in verdict.expired if e.rule.expires],
        "scanner": {"name": scan.scanner, "version": scan.scanner_version},
    }


def service_payload(scan: ScanResult, verdict: Verdict, repository: str, digest: str,
                    report_url: str | None, limit: int = 200) -> dict[str, Any]:
    """What the promotion service records for the image (POST /api/v1/scans): counts per
    lower-case severity and the most severe findings, as its gate names them."""
    body: dict[str, Any] = {
        "repository": repository,
        "digest": digest,
        "scanner": scan.scanner_label[:64],
        "counts": {s.lower(): n for s, n in verdict.counts().items()},
        "findings": [{"id": f.id[:128], "severity": f.severity.lower(),
                      "package": (f.package or f.location)[:255], "title": f.title[:500]}
                     for f in verdict.remaining[:limit]],
    }
    if report_url:
        body["report_url"] = report_url
    return body


# --- GitLab container scanning report ----------------------------------------------------

def gitlab_report(scan: ScanResult, verdict: Verdict, image: str, started: datetime,
                  finished: datetime, analyzer_version: str) -> dict[str, Any]:
    """GitLab's container-scanning report (schema 15.2.4): every finding not ignored.

    Secrets and Dockerfile misconfigurations go in too, so the merge request's security
    widget shows them; their `package` is the file they were found in. Ignored findings
    are left out and listed in `scan.messages` with their reasons.
    """
    image = image or scan.artifact or "unknown"
    messages = [{"level": "info",
                 "value": f"{item.finding.id} ({item.finding.package or item.finding.location}) "
                          f"ignored: {item.rule.reason}"
                          + (f" (until {item.rule.expires})" if item.rule.expires else "")}
                for item in verdict.ignored]
    messages += [{"level": "warn",
                  "value": f"ignore entry {e.rule.describe()} expired on {e.rule.expires}; "
                           "it ignores nothing"} for e in verdict.expired]
    scan_part: dict[str, Any] = {
        "analyzer": {"id": "docker-cd", "name": "docker-cd scan", "version": analyzer_version,
                     "vendor": {"name": "docker-cd"}},
        "scanner": {"id": scan.scanner, "name": scan.scanner.capitalize(),
                    "version": scan.scanner_version or "unknown",
                    "vendor": {"name": "Aqua Security" if scan.scanner == "trivy"
                               else "Anchore" if scan.scanner == "grype" else scan.scanner}},
        "type": "container_scanning",
        "status": "success",
        "start_time": _gitlab_time(started),
        "end_time": _gitlab_time(finished),
    }
    if messages:
        scan_part["messages"] = messages
    return {
        "version": GITLAB_SCHEMA_VERSION,
        "schema": GITLAB_SCHEMA_URL,
        "scan": scan_part,
        "vulnerabilities": [_gitlab_vulnerability(f, scan, image) for f in verdict.remaining],
        "remediations": [],
    }


def _gitlab_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _gitlab_vulnerability(finding: Finding, scan: ScanResult, image: str) -> dict[str, Any]:
    ident: dict[str, Any] = {"type": _identifier_type(finding), "name": finding.id,
                             "value": finding.id}
    if _is_url(finding.url):
        ident["url"] = finding.url
    item: dict[str, Any] = {
        "id": str(uuid.uuid5(_ID_NAMESPACE, "|".join((image, *finding.key)))),
        "name": (finding.title or finding.id)[:255],
        "description": (finding.description or finding.title or finding.id)[:1_000_000],
        "severity": finding.severity.capitalize(),
        "solution": _solution(finding)[:7000],
        "identifiers": [ident],
        "location": {
            "dependency": {
                "package": {"name": finding.package or finding.location or finding.target},
                "version": finding.installed_version,
            },
            "operating_system": scan.os or "Unknown",
            "image": image,
        },
    }
    if _is_url(finding.url):
        item["links"] = [{"url": finding.url}]
    vectors = [{"vendor": vendor, "vector": vector} for vendor, vector in finding.cvss
               if _CVSS2.match(vector) or _CVSS3.match(vector) or _CVSS4.match(vector)][:10]
    if vectors:
        item["cvss_vectors"] = vectors
    return item


def _identifier_type(finding: Finding) -> str:
    if finding.type == SECRET:
        return "trivy_secret_rule"
    if finding.type == MISCONFIGURATION:
        return "trivy_misconfiguration"
    prefix = finding.id.split("-", 1)[0].lower()
    return prefix if prefix in ("cve", "ghsa", "osv", "dsa", "usn", "rhsa", "alas") else "vuln_id"


def _solution(finding: Finding) -> str:
    if finding.type == SECRET:
        return ("Remove the secret from the image (and from every layer: rebuild without it), "
                "then rotate it: whoever pulled the image has it.")
    if finding.type == MISCONFIGURATION:
        return finding.description or "See the check's documentation."
    if finding.fixable:
        return f"Upgrade {finding.package} to {finding.fixed_version}."
    return "No fixed version is known yet."


_URL = re.compile(r"^https?://.+")


def _is_url(text: str) -> bool:
    return bool(_URL.match(text or ""))
