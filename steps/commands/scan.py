"""`docker-cd scan IMAGE`: scan an image with Trivy and fail when the team's policy says so.

Vulnerabilities and secrets, and misconfigurations (of the image's configuration and of a
--dockerfile) only when the misconfig scanner is asked for; `--offline` keeps trivy off the
network for every scanner. The findings go through the policy (steps/scanning/policy.py:
threshold, fixable-only, secrets, the ignore file), into a summary in the log, GitLab's
container-scanning report, a CycloneDX SBOM, the CD_SCAN_* outputs and, when a service is
configured, the promotion service. A scanner that is missing or fails ends the step with exit 3:
an image that was not scanned never passes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.commands import Step
from steps.commands.inputs.ci import JOB_URL
from steps.commands.inputs.registry import RegistryAuth
from steps.commands.inputs.service import Service
from steps.images.reference import parse_reference, split_image
from steps.release.members import variable
from steps.runtime.errors import ExternalError, Refused, StepError, UsageError
from steps.runtime.inputs import group, option
from steps.runtime.log import Log
from steps.runtime.outputs import Result
from steps.scanning.findings import ReportFormatError, ScanResult, load_report, parse_trivy
from steps.scanning.policy import (
    THRESHOLDS,
    Policy,
    PolicyError,
    Verdict,
    evaluate,
    load_ignore_file,
)
from steps.scanning.report import (
    details,
    gitlab_report,
    outputs,
    service_payload,
    summary_table,
)
from steps.scanning.trivy import IMAGE_SOURCES, SCANNERS, Trivy, TrivyOptions

if TYPE_CHECKING:
    from steps.context import Context
    from steps.images.credentials import Credentials
    from steps.service.client import ServiceClient

DEFAULT_IGNORE_FILE = ".docker-cd-ignore.yml"


@dataclass(frozen=True)
class Settings:
    """The scan step's inputs."""

    image: str | None = option(
        "Image to scan: repository:tag or repository@sha256:... (registry or local engine).",
        env=("CD_IMAGE",), positional=True)
    member: str | None = option(
        "Scan this member of a release: the image in its CD_IMAGE_<MEMBER> (its build job's); "
        "register records the summary with the release.", env=("CD_MEMBER",), metavar="NAME")
    scanners: tuple[str, ...] = option(
        "What to look for: vuln, secret, misconfig (comma list). misconfig checks the image's "
        "configuration, and the --dockerfile if one is given.", env=("CD_SCAN_SCANNERS",),
        default=("vuln", "secret"))
    dockerfile: str | None = option(
        "Dockerfile the misconfig scanner also checks (needs misconfig in --scanners).",
        env=("CD_SCAN_DOCKERFILE",), metavar="FILE")
    from_report: str | None = option(
        "Apply the policy to this Trivy (or Grype) JSON report instead of scanning.",
        env=("CD_SCAN_FROM_REPORT",), metavar="FILE")
    severity_threshold: str = option(
        "Fail on a finding of this severity or above (UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL; "
        "NONE: never on severity).", env=("CD_SCAN_SEVERITY_THRESHOLD",), default="HIGH",
        metavar="SEVERITY")
    fixable_only: bool = option("Only vulnerabilities with a fixed version fail the scan.",
                                env=("CD_SCAN_FIXABLE_ONLY",), default=False)
    allow_secrets: bool = option(
        "Secrets found in the image do not fail the scan (they are still reported).",
        env=("CD_SCAN_ALLOW_SECRETS",), default=False)
    ignore_file: str | None = option(
        f"Accepted findings (id, reason, expires, package, path) [default: "
        f"{DEFAULT_IGNORE_FILE} when it exists].", env=("CD_SCAN_IGNORE_FILE",), metavar="FILE")
    gitlab_report: str | None = option(
        "Write GitLab's container-scanning report here (artifacts:reports:container_scanning).",
        env=("CD_SCAN_GITLAB_REPORT",), metavar="FILE")
    sbom: str | None = option(
        "Write a CycloneDX SBOM of the image here (artifacts:reports:cyclonedx).",
        env=("CD_SCAN_SBOM",), metavar="FILE")
    trivy_report: str | None = option("Keep Trivy's own JSON report here.",
                                      env=("CD_SCAN_TRIVY_REPORT",), metavar="FILE")
    top: int = option("How many findings the log's summary lists.", env=("CD_SCAN_TOP",),
                      default=10)
    image_src: tuple[str, ...] = option(
        "Where trivy looks for the image, in order: docker, containerd, podman, remote "
        "[default: all, in that order].", env=("CD_SCAN_IMAGE_SRC",), default=())
    offline: bool = option(
        "Scan without network access: trivy fetches no vulnerability DB, Java DB or checks "
        "bundle and asks no API about dependencies; it uses what --cache-dir and trivy itself "
        "hold (the image is still read from its registry).", env=("CD_SCAN_OFFLINE",),
        default=False)
    cache_dir: str | None = option("Trivy's cache dir (holds the vulnerability DB).",
                                   env=("CD_SCAN_CACHE_DIR", "TRIVY_CACHE_DIR"), metavar="DIR")
    db_repository: str | None = option(
        "OCI repository to download the vulnerability DB from (a mirror).",
        env=("CD_SCAN_DB_REPOSITORY", "TRIVY_DB_REPOSITORY"), metavar="REF")
    insecure: bool = option("Let trivy talk to registries with self-signed TLS certificates.",
                            env=("CD_SCAN_INSECURE",), default=False)
    timeout: int = option("Seconds trivy may take.", env=("CD_SCAN_TIMEOUT",), default=600)
    trivy_bin: str = option("The trivy executable.", env=("CD_TRIVY_BIN", "TRIVY_BIN"),
                            default="trivy", metavar="PATH")
    job_url: str | None = JOB_URL.field()
    auth: RegistryAuth = group(RegistryAuth)
    service: Service = group(Service)

    @property
    def threshold(self) -> str:
        return self.severity_threshold.strip().upper()

    @property
    def active_scanners(self) -> tuple[str, ...]:
        """The scanners asked for: the misconfiguration checks only when named."""
        return tuple(s.strip().lower() for s in self.scanners)


def validate(settings: Settings) -> None:
    """Check the inputs before anything runs."""
    if not settings.image and not settings.from_report and not settings.member:
        raise UsageError("give the image to scan (IMAGE, or CD_IMAGE), or an existing report "
                         "with --from-report", "image")
    if settings.image:
        try:
            parse_reference(settings.image)
        except ValueError as e:
            raise UsageError(f"{e}", "image") from None
    if settings.threshold not in THRESHOLDS:
        raise UsageError(f"must be one of {', '.join(THRESHOLDS)}; got "
                         f"{settings.severity_threshold!r}", "severity_threshold")
    unknown = [s for s in settings.active_scanners if s not in SCANNERS]
    if unknown:
        raise UsageError(f"unknown scanner(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(SCANNERS)}", "scanners")
    sources = [s for s in settings.image_src if s not in IMAGE_SOURCES]
    if sources:
        raise UsageError(f"unknown source(s) {', '.join(sources)}; choose from "
                         f"{', '.join(IMAGE_SOURCES)}", "image_src")
    if settings.dockerfile and "misconfig" not in settings.active_scanners:
        raise UsageError("only the misconfig scanner checks a Dockerfile; add it: --scanners "
                         f"{','.join((*settings.active_scanners, 'misconfig'))}", "dockerfile")
    if settings.from_report and settings.dockerfile:
        raise UsageError("--dockerfile needs a scan; with --from-report the report is all "
                         "there is (scan the Dockerfile where the report was made)", "dockerfile")
    for dest, path in (("from_report", settings.from_report), ("dockerfile", settings.dockerfile),
                       ("ignore_file", settings.ignore_file)):
        if path and not Path(path).is_file():
            raise UsageError(f"no such file: {path}", dest)
    if settings.timeout <= 0:
        raise UsageError("must be a positive number of seconds", "timeout")
    if settings.top < 0:
        raise UsageError("must be 0 or more", "top")


def execute(settings: Settings, ctx: Context) -> Result:
    """Scan (or read the report), apply the policy, write the reports, say yes or no."""
    started = datetime.now(UTC)
    log = ctx.log
    if settings.member:
        settings = replace(settings, image=_member_image(settings.member, ctx.environ))
    policy = _policy(settings)
    image = settings.image or ""
    env, credentials = _trivy_env(settings, image, ctx)
    trivy = Trivy(_trivy_options(settings, log.debug_enabled), log, env, credentials)
    with tempfile.TemporaryDirectory(prefix="docker-cd-scan-") as tmp:
        if settings.from_report:
            scan, raw = _read_report(settings.from_report), Path(settings.from_report)
            log.info(f"Applying the policy to {settings.from_report} ({scan.scanner_label}, "
                     f"{len(scan.findings)} finding(s))")
        else:
            trivy.check()
            scan, raw = _scan(settings, trivy, image, tmp)
        if settings.trivy_report and not settings.from_report:
            _copy(raw, settings.trivy_report)
        if settings.sbom:
            _sbom(settings, trivy, scan, raw)
    image = _image_name(image, scan)
    verdict = evaluate(scan.findings, policy, started.date())
    log.info(summary_table(scan, verdict, image, settings.top))
    for expired in verdict.expired:
        log.warn(f"ignore entry {expired.rule.describe()} expired on {expired.rule.expires}; "
                 f"it ignores nothing ({len(expired.would_ignore)} finding(s) count again): "
                 "fix them or renew the entry with a new date and reason")
    if settings.gitlab_report:
        report = gitlab_report(scan, verdict, image, started, datetime.now(UTC), _version())
        _write_json(settings.gitlab_report, report, "gitlab_report")
        log.info(f"GitLab container-scanning report: {settings.gitlab_report} "
                 f"({len(report['vulnerabilities'])} finding(s))")
    result = Result(outputs=outputs(scan, verdict, image),
                    data={"scan": details(scan, verdict)})
    service = ctx.service(settings.service.service_url, settings.service.credential)
    if service and not settings.member:  # a member's scan is posted by register, after it
        _report_to_service(service, settings.job_url, scan, verdict, image, log)
    if not verdict.passed:
        raise Refused(f"the scan policy failed for {image}", verdict.reasons(), result)
    log.info(f"The scan policy passed for {image}.")
    return result


def _policy(settings: Settings) -> Policy:
    path = settings.ignore_file
    if path is None and Path(DEFAULT_IGNORE_FILE).is_file():
        path = DEFAULT_IGNORE_FILE
    try:
        ignores = load_ignore_file(path) if path else ()
    except PolicyError as e:
        raise UsageError(f"--ignore-file (CD_SCAN_IGNORE_FILE): {e}", "ignore_file") from e
    return Policy(threshold=settings.threshold, fixable_only=settings.fixable_only,
                  allow_secrets=settings.allow_secrets, ignores=ignores)


def _trivy_options(settings: Settings, debug: bool) -> TrivyOptions:
    return TrivyOptions(binary=settings.trivy_bin, cache_dir=settings.cache_dir,
                        offline=settings.offline,
                        db_repository=settings.db_repository, image_src=settings.image_src,
                        insecure=settings.insecure, timeout=settings.timeout,
                        debug=debug)


def _read_report(path: str) -> ScanResult:
    try:
        return load_report(path)
    except ReportFormatError as e:
        raise UsageError(f"--from-report (CD_SCAN_FROM_REPORT): {e}", "from_report") from e


def _member_image(member: str, environ: Mapping[str, str]) -> str:
    """The image of a release member, from the variable its build job wrote."""
    name = variable(member)
    image = environ.get(name)
    if not image:
        raise UsageError(f"{name} is not set: the build job of member {member} writes it "
                         "(needs: that build job, with its dotenv)", "member")
    return image


def _scan(settings: Settings, trivy: Trivy, image: str, tmp: str) -> tuple[ScanResult, Path]:
    scanners = settings.active_scanners
    trivy.log.info(f"Scanning {image} for {', '.join(scanners)}")
    # With a Dockerfile its checks replace those of the config trivy rebuilds from the image.
    in_image = [s for s in scanners if not (s == "misconfig" and settings.dockerfile)]
    raw = trivy.scan_image(image, in_image, str(Path(tmp) / "image.json"))
    scan = _parse_trivy(raw)
    if settings.dockerfile and "misconfig" in scanners:
        config = _parse_trivy(trivy.scan_dockerfile(settings.dockerfile, tmp,
                                                    str(Path(tmp) / "dockerfile.json")))
        config = replace(config, findings=tuple(
            replace(f, target=settings.dockerfile, path=settings.dockerfile)
            for f in config.findings))
        scan = scan.merged(config)
    return scan, raw


def _parse_trivy(path: Path) -> ScanResult:
    try:
        return parse_trivy(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (ValueError, ReportFormatError) as e:
        raise ExternalError(f"trivy wrote a report that cannot be read: {e}") from e


def _sbom(settings: Settings, trivy: Trivy, scan: ScanResult, raw: Path) -> None:
    if scan.scanner != "trivy":
        raise UsageError(f"--sbom (CD_SCAN_SBOM): an SBOM can be made from a Trivy report only; "
                         f"{settings.from_report} is a {scan.scanner} report", "sbom")
    trivy.check()
    Path(settings.sbom).parent.mkdir(parents=True, exist_ok=True)
    trivy.sbom(str(raw), settings.sbom)
    try:
        bom = json.loads(Path(settings.sbom).read_text(encoding="utf-8"))
    except ValueError as e:
        raise ExternalError(f"trivy wrote an SBOM that is not JSON: {e}") from e
    if bom.get("bomFormat") != "CycloneDX":
        raise ExternalError(f"trivy wrote {settings.sbom}, but it is not a CycloneDX SBOM")
    trivy.log.info(f"CycloneDX SBOM: {settings.sbom} ({len(bom.get('components') or [])} "
                   "component(s))")


def _copy(source: Path, target: str) -> None:
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _write_json(path: str, data: Any, dest: str) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}", dest) from e


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("docker-cd")
    except PackageNotFoundError:
        return "0.0.0"


# --- the image's name and registry credentials ------------------------------------------

def _image_name(image: str, scan: ScanResult) -> str:
    """`repository@digest` when the scan learnt the digest (digests, not tags, identify
    images), else what was given."""
    name = image or scan.artifact
    known = split_image(name)
    if known:
        return "@".join(known)
    repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    for repo_digest in scan.repo_digests:
        found = split_image(repo_digest)
        if found and found[0] == repository:
            return "@".join(found)
    return name


def _trivy_env(settings: Settings, image: str,
               ctx: Context) -> tuple[dict[str, str] | None, Credentials | None]:
    """Trivy's environment: this process's, plus registry credentials in the variables trivy
    reads (TRIVY_USERNAME/PASSWORD), masked (None: nothing to add); and those credentials."""
    env: dict[str, str] = {}
    found = None
    if settings.auth.docker_config:  # trivy also reads the Docker config (and its helpers)
        env["DOCKER_CONFIG"] = settings.auth.docker_config
    if image:
        host = parse_reference(image).registry
        found = ctx.credentials(settings.auth.store(), host)
        if found is not None and found.identity_token:
            ctx.log.warn(f"the credentials for {host} ({found.source}) are an identity token, "
                         "which trivy cannot use; set CD_REGISTRY_USER and CD_REGISTRY_PASSWORD")
            found = None
        elif found is not None:
            env.update(TRIVY_USERNAME=found.username, TRIVY_PASSWORD=found.password)
    return ({**ctx.process_environ, **env} if env else None), found


# --- the promotion service ---------------------------------------------------------------

def _report_to_service(service: ServiceClient, job_url: str | None, scan: ScanResult,
                       verdict: Verdict, image: str, log: Log) -> None:
    """Record the summary, so the service's gate can read it. When the scan failed, the
    policy's no stays the answer even if the service cannot be told."""
    known = split_image(image)
    if not known:
        log.warn(f"not reporting to the promotion service: the digest of {image} is not known "
                 "(scan it as repository@sha256:..., CD_IMAGE from the push job)")
        return
    payload = service_payload(scan, verdict, *known, job_url)
    try:
        answer = service.post("scans", payload)
    except StepError as e:
        if "HTTP 404" in e.message:
            log.warn(f"the promotion service does not know {image} yet ({e.message}); the scan "
                     "summary was not recorded: register the image first (docker-cd register), "
                     "or give this job's --json file to `docker-cd register --scan-report`")
            return
        if verdict.passed:
            raise
        log.warn(f"the scan summary could not be recorded: {e.message}")
        return
    scan_id = answer.get("id") if isinstance(answer, dict) else None
    log.info("Scan summary recorded by the promotion service"
             + (f" (scan {scan_id})" if scan_id is not None else ""))


STEP = Step(name="scan", help=__doc__ or "", settings=Settings, execute=execute,
            validate=validate)
