"""One model for what a scanner found, read from Trivy's or Grype's JSON report.

The policy (steps/scanning/policy.py) and the reports (steps/scanning/report.py) only ever see
`Finding`s, so a second scanner costs one parser. Plain Python: no docker, no requests.
A secret finding never carries the secret: only the rule, the file and the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Lowest first; a finding's rank is its index.
SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")

VULNERABILITY = "vulnerability"
SECRET = "secret"  # noqa: S105 - a finding type, not a password
MISCONFIGURATION = "misconfiguration"
IMAGE_CONFIG = "image config"  # where a finding in the image's ENV, labels or history is


class ReportFormatError(ValueError):
    """A scanner report that is not what its format promises (names what is wrong)."""


def normalise_severity(value: Any) -> str:
    """Scanners spell severities differently (`High`, `high`, `Negligible`); map to SEVERITIES."""
    text = str(value or "").strip().upper()
    if text in SEVERITIES:
        return text
    return {"NEGLIGIBLE": "LOW", "INFO": "LOW", "MODERATE": "MEDIUM",
            "IMPORTANT": "HIGH"}.get(text, "UNKNOWN")


def severity_rank(severity: str) -> int:
    """Index in SEVERITIES (UNKNOWN lowest)."""
    return SEVERITIES.index(normalise_severity(severity))


@dataclass(frozen=True)
class Finding:
    """One vulnerable package, leaked secret or Dockerfile misconfiguration."""

    id: str
    type: str
    severity: str
    title: str = ""
    package: str = ""
    installed_version: str = ""
    fixed_version: str = ""
    target: str = ""          # what the scanner scanned: "app (debian 12.5)", "Python", a file
    path: str = ""            # the file in the image: a package's metadata, the secret's file
    layer: str = ""           # layer DiffID
    layer_created_by: str = ""
    line: int | None = None
    url: str = ""
    description: str = ""
    cvss: tuple[tuple[str, str], ...] = ()   # (vendor, vector), primary first
    status: str = ""          # Trivy's status: fixed, affected, will_not_fix, ...

    @property
    def fixable(self) -> bool:
        """A fixed version exists (upgrading the package removes the finding)."""
        return bool(self.fixed_version)

    @property
    def rank(self) -> int:
        return severity_rank(self.severity)

    @property
    def location(self) -> str:
        """Where a reader looks for it: the package's file, the secret's file:line, the target."""
        where = self.path or self.target
        return f"{where}:{self.line}" if self.line and where else where

    @property
    def key(self) -> tuple[str, ...]:
        """Identity across scans: the same finding twice in one report counts once."""
        return (self.type, self.id, self.package, self.installed_version,
                self.path or self.target, str(self.line or ""))


@dataclass(frozen=True)
class ScanResult:
    """A whole report: what was scanned, by what, and the findings (deduplicated)."""

    findings: tuple[Finding, ...]
    artifact: str = ""
    scanner: str = "trivy"
    scanner_version: str = ""
    os: str = ""              # "debian 12.5"; empty when the scanner found no OS
    image_id: str = ""
    repo_digests: tuple[str, ...] = ()
    created_at: str = ""

    @property
    def scanner_label(self) -> str:
        """`trivy 0.50.1`, as the log, the outputs and the service name the scanner."""
        return f"{self.scanner} {self.scanner_version}".strip()

    def merged(self, other: ScanResult) -> ScanResult:
        """This result plus another's findings (the Dockerfile scan joins the image scan)."""
        return replace(self, findings=dedupe((*self.findings, *other.findings)))


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    """Findings per severity, most severe first, every severity present."""
    counts = dict.fromkeys(reversed(SEVERITIES), 0)
    for finding in findings:
        counts[finding.severity] += 1
    return counts


def dedupe(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Findings in order, each key once."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for finding in findings:
        if finding.key not in seen:
            seen.add(finding.key)
            out.append(finding)
    return tuple(out)


def load_report(path: str | Path) -> ScanResult:
    """Read a Trivy or Grype JSON report, whichever the file is."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ReportFormatError(f"cannot read {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise ReportFormatError(f"{path} is not JSON: {e}") from e
    return parse_report(data, str(path))


def parse_report(data: Any, source: str = "report") -> ScanResult:
    """A Trivy (`SchemaVersion` + `Results`) or Grype (`matches` + `descriptor`) report."""
    if isinstance(data, Mapping) and "SchemaVersion" in data:
        return parse_trivy(data, source)
    if isinstance(data, Mapping) and "matches" in data:
        return parse_grype(data, source)
    raise ReportFormatError(
        f"{source} is neither a Trivy JSON report (trivy --format json: SchemaVersion, "
        "Results) nor a Grype JSON report (grype -o json: matches)")


# --- Trivy -------------------------------------------------------------------------------

def parse_trivy(data: Mapping[str, Any], source: str = "report") -> ScanResult:
    """Trivy's JSON report (SchemaVersion 2) into findings."""
    if data.get("SchemaVersion") != 2:
        raise ReportFormatError(
            f"{source}: Trivy report SchemaVersion {data.get('SchemaVersion')!r} is not "
            "supported (expected 2, written by Trivy 0.20 and later)")
    results = data.get("Results")
    results = [] if results is None else results  # trivy writes no Results when it finds nothing
    if not isinstance(results, list):
        raise ReportFormatError(f"{source}: Results must be a list")
    metadata = data.get("Metadata") or {}
    findings: list[Finding] = []
    for index, result in enumerate(results):
        if not isinstance(result, Mapping):
            raise ReportFormatError(f"{source}: Results[{index}] must be an object")
        target = str(result.get("Target") or "")
        for item in result.get("Vulnerabilities") or []:
            findings.append(_trivy_vulnerability(item, target, f"{source}: Results[{index}]"))
        found = [_trivy_secret(item, target) for item in result.get("Secrets") or []]
        found += [_trivy_misconfiguration(item, target)
                  for item in result.get("Misconfigurations") or []
                  if str(item.get("Status", "FAIL")).upper() == "FAIL"]
        if target and target == data.get("ArtifactName") and \
                data.get("ArtifactType") == "container_image":
            # Found in the image's config (ENV, labels, history): its JSON's lines mean nothing
            found = [replace(f, target=IMAGE_CONFIG, path=IMAGE_CONFIG, line=None)
                     for f in found]
        findings += found
    os_info = metadata.get("OS") or {}
    os_name = " ".join(str(os_info.get(k, "")) for k in ("Family", "Name")).strip()
    return ScanResult(
        findings=dedupe(findings),
        artifact=str(data.get("ArtifactName") or ""),
        scanner="trivy",
        scanner_version=str((data.get("Trivy") or {}).get("Version") or ""),
        os=os_name,
        image_id=str(metadata.get("ImageID") or ""),
        repo_digests=tuple(metadata.get("RepoDigests") or ()),
        created_at=str(data.get("CreatedAt") or ""),
    )


def _trivy_vulnerability(item: Mapping[str, Any], target: str, where: str) -> Finding:
    vuln_id = item.get("VulnerabilityID")
    if not vuln_id or not item.get("PkgName"):
        raise ReportFormatError(f"{where}: a vulnerability needs VulnerabilityID and PkgName")
    layer = item.get("Layer") or {}
    cvss = []
    for vendor, scores in (item.get("CVSS") or {}).items():
        for key in ("V3Vector", "V2Vector"):
            if scores.get(key):
                cvss.append((str(vendor), str(scores[key])))
                break
    source = item.get("SeveritySource")
    cvss.sort(key=lambda pair: pair[0] != source)
    return Finding(
        id=str(vuln_id),
        type=VULNERABILITY,
        severity=normalise_severity(item.get("Severity")),
        title=str(item.get("Title") or ""),
        package=str(item["PkgName"]),
        installed_version=str(item.get("InstalledVersion") or ""),
        fixed_version=str(item.get("FixedVersion") or ""),
        target=target,
        path=str(item.get("PkgPath") or ""),
        layer=str(layer.get("DiffID") or ""),
        layer_created_by=str(layer.get("CreatedBy") or ""),
        url=str(item.get("PrimaryURL") or ""),
        description=str(item.get("Description") or ""),
        cvss=tuple(cvss),
        status=str(item.get("Status") or ""),
    )


def _trivy_secret(item: Mapping[str, Any], target: str) -> Finding:
    # Deliberately ignores Match and Code: Code holds the neighbouring lines unmasked.
    layer = item.get("Layer") or {}
    return Finding(
        id=str(item.get("RuleID") or "secret"),
        type=SECRET,
        severity=normalise_severity(item.get("Severity")),
        title=str(item.get("Title") or item.get("Category") or "secret"),
        target=target,
        path=target,
        layer=str(layer.get("DiffID") or ""),
        layer_created_by=str(layer.get("CreatedBy") or ""),
        line=item.get("StartLine") or None,
    )


def _trivy_misconfiguration(item: Mapping[str, Any], target: str) -> Finding:
    cause = item.get("CauseMetadata") or {}
    return Finding(
        id=str(item.get("ID") or item.get("AVDID") or "misconfiguration"),
        type=MISCONFIGURATION,
        severity=normalise_severity(item.get("Severity")),
        title=str(item.get("Title") or ""),
        target=target,
        path=target,
        line=cause.get("StartLine") or None,
        url=str(item.get("PrimaryURL") or ""),
        description=" ".join(str(item.get(k) or "") for k in ("Message", "Resolution")).strip(),
    )


# --- Grype -------------------------------------------------------------------------------

def parse_grype(data: Mapping[str, Any], source: str = "report") -> ScanResult:
    """Grype's JSON report (`grype -o json`) into findings."""
    matches = data.get("matches")
    if not isinstance(matches, list):
        raise ReportFormatError(f"{source}: matches must be a list")
    src = data.get("source") or {}
    target = src.get("target") if isinstance(src.get("target"), Mapping) else {}
    distro = data.get("distro") or {}
    findings = []
    for index, match in enumerate(matches):
        vuln = match.get("vulnerability") or {}
        artifact = match.get("artifact") or {}
        if not vuln.get("id") or not artifact.get("name"):
            raise ReportFormatError(
                f"{source}: matches[{index}] needs vulnerability.id and artifact.name")
        fix = vuln.get("fix") or {}
        locations = artifact.get("locations") or [{}]
        related = match.get("relatedVulnerabilities") or []
        title = vuln.get("description") or next(
            (r.get("description") for r in related if r.get("description")), "")
        cvss = tuple((str(c.get("source") or "grype"), str(c["vector"]))
                     for c in (vuln.get("cvss") or []) if c.get("vector"))
        findings.append(Finding(
            id=str(vuln["id"]),
            type=VULNERABILITY,
            severity=normalise_severity(vuln.get("severity")),
            title=str(title).split("\n")[0][:200],
            package=str(artifact["name"]),
            installed_version=str(artifact.get("version") or ""),
            fixed_version=", ".join(fix.get("versions") or []),
            target=str(artifact.get("type") or ""),
            path=str(locations[0].get("path") or "").lstrip("/"),
            layer=str(locations[0].get("layerID") or ""),
            url=str(vuln.get("dataSource") or ""),
            description=str(vuln.get("description") or ""),
            cvss=cvss,
            status=str(fix.get("state") or ""),
        ))
    descriptor = data.get("descriptor") or {}
    return ScanResult(
        findings=dedupe(findings),
        artifact=str(target.get("userInput") or ""),
        scanner="grype",
        scanner_version=str(descriptor.get("version") or ""),
        os=" ".join(str(distro.get(k, "")) for k in ("name", "version")).strip(),
        image_id=str(target.get("imageID") or ""),
        repo_digests=tuple(target.get("repoDigests") or ()),
        created_at=str(descriptor.get("timestamp") or ""),
    )
