"""Register the image with the promotion service: its digest, commit, ref, tags and pipeline.

Registration is what lets the service follow the image through the environments; it is
idempotent (the same repository and digest answers with the image already registered), so a
retried job changes nothing. With `--scan-report` (the scan step's `--json` file or its dotenv)
the scan summary is recorded as well: for a scan that ran without the service configured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.commands import Step
from steps.commands.inputs.ci import COMMIT_TIME, JOB_URL
from steps.commands.inputs.pipeline import Pipeline
from steps.commands.inputs.service import Service
from steps.images.reference import split_image
from steps.runtime.errors import UsageError
from steps.runtime.inputs import group, option
from steps.runtime.outputs import Result

if TYPE_CHECKING:
    from steps.context import Context

SEVERITIES = ("critical", "high", "medium", "low", "unknown")
SIGNED = ("commit_sha", "ref", "pipeline_id", "triggered_by")  # the ID token's, not the body's


@dataclass(frozen=True)
class Settings:
    """The register step's inputs."""

    image: str | None = option(
        "The image, by digest: repository@sha256:... (the build job's CD_IMAGE).",
        env=("CD_IMAGE",), positional=True)
    project: str | None = option("Project path the service files the image under (group/name).",
                                 env=("CD_SERVICE_PROJECT", "CI_PROJECT_PATH", "JOB_NAME"))
    gitlab_project_id: int | None = option(
        "GitLab project id (lets the service trigger its pipelines).",
        env=("CD_GITLAB_PROJECT_ID", "CI_PROJECT_ID"))
    ref: str | None = option("Branch or tag the image was built from.",
                             env=("CD_REF", "CI_COMMIT_REF_NAME", "BRANCH_NAME", "GIT_BRANCH"))
    commit_time: str | None = COMMIT_TIME.field()
    tags: tuple[str, ...] = option("Tags pushed for the image (comma list).",
                                   env=("CD_IMAGE_TAGS",), default=())
    triggered_by: str | None = option(
        "Who started the pipeline (with a service token only: with the job's ID token the "
        "service takes it from the token).",
        env=("CD_TRIGGERED_BY", "GITLAB_USER_LOGIN", "BUILD_USER_ID"))
    commit_author: str | None = option(
        "The commit's author, `Name <e-mail>` (four-eyes keeps them from approving it).",
        env=("CD_COMMIT_AUTHOR", "CI_COMMIT_AUTHOR", "GIT_AUTHOR_EMAIL"))
    scan_report: str | None = option(
        "Also record this scan summary: the scan step's --json file or its dotenv (CD_SCAN_* "
        "lines).", env=("CD_SCAN_REPORT",), metavar="FILE")
    job_url: str | None = JOB_URL.field()
    pipeline: Pipeline = group(Pipeline)
    service: Service = group(Service)


def image_ref(image: str) -> tuple[str, str]:
    """(repository, digest) of `repository[:tag]@sha256:...`; ValueError saying why not."""
    ref = split_image(image)
    if ref is None:
        raise ValueError(f"{image!r} names no digest; the service records images by digest "
                         "(repository@sha256:..., the build job's CD_IMAGE)")
    return ref


def validate(settings: Settings) -> None:
    """Check the inputs before talking to the service."""
    pipeline = settings.pipeline
    if not settings.service.service_url:
        raise UsageError("no promotion service to register with: set CD_SERVICE_URL",
                         "service_url")
    if not settings.image:
        raise UsageError("which image? give repository@sha256:... (CD_IMAGE)", "image")
    try:
        image_ref(settings.image)
    except ValueError as e:
        raise UsageError(str(e), "image") from e
    if not (settings.project or pipeline.project_path):
        raise UsageError("which project? set CD_SERVICE_PROJECT (GitLab sets CI_PROJECT_PATH)",
                         "project")
    if pipeline.pipeline_id and not str(pipeline.pipeline_id).isdigit():
        raise UsageError(f"must be a number; got {pipeline.pipeline_id!r}", "pipeline_id")
    if settings.scan_report and not Path(settings.scan_report).is_file():
        raise UsageError(f"{settings.scan_report} does not exist (the scan job's --json file)",
                         "scan_report")


def image_payload(settings: Settings) -> dict[str, Any]:
    """The registration body: only what is known, so the service's validation names real faults."""
    repository, digest = image_ref(settings.image or "")
    pipeline = settings.pipeline
    body: dict[str, Any] = {
        "repository": repository,
        "digest": digest,
        "project": settings.project or pipeline.project_path,
        "gitlab_project_id": settings.gitlab_project_id,
        "commit_sha": pipeline.commit_sha,
        "commit_time": settings.commit_time,
        "ref": settings.ref or pipeline.git_tag,
        "tags": list(settings.tags),
        "pipeline_id": int(pipeline.pipeline_id) if pipeline.pipeline_id else None,
        "pipeline_url": pipeline.pipeline_url,
        "triggered_by": settings.triggered_by,
        "commit_author": settings.commit_author,
    }
    if settings.service.uses_id_token:  # GitLab signed these into the job's ID token
        for signed in SIGNED:
            body.pop(signed)
    return {k: v for k, v in body.items() if v not in (None, "", [])}


def scan_payload(text: str, repository: str, digest: str, report_url: str | None
                 ) -> dict[str, Any]:
    """The scan summary from the scan step's JSON file or dotenv, as the service records it."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        scan = data.get("scan") if isinstance(data.get("scan"), dict) else data
        counts = scan.get("counts") or {}
        findings = scan.get("findings") or []
        scanner = scan.get("scanner") or {}
        scanner_name = " ".join(str(scanner.get(k, "")) for k in ("name", "version")).strip() \
            if isinstance(scanner, dict) else str(scanner)
        scanner_name = scanner_name or data.get("outputs", {}).get("CD_SCAN_SCANNER", "")
    else:
        env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        counts = {s: env[f"CD_SCAN_{s.upper()}"] for s in SEVERITIES
                  if f"CD_SCAN_{s.upper()}" in env}
        findings, scanner_name = [], env.get("CD_SCAN_SCANNER", "")
    if not counts:
        raise ValueError("holds no scan counts (expected the scan step's --json or --dotenv file)")
    body: dict[str, Any] = {
        "repository": repository,
        "digest": digest,
        "scanner": scanner_name or "trivy",
        "counts": {str(k).lower(): int(v) for k, v in counts.items()
                   if str(k).lower() in SEVERITIES},
        "findings": [{k: f[k] for k in ("id", "severity", "package", "title") if f.get(k)}
                     | {"severity": str(f.get("severity", "unknown")).lower()}
                     for f in findings[:200] if isinstance(f, dict) and f.get("id")],
    }
    if report_url:
        body["report_url"] = report_url
    return body


def execute(settings: Settings, ctx: Context) -> Result:
    """Register the image (and its scan summary); report the service's image id."""
    log = ctx.log
    client = ctx.service(settings.service.service_url, settings.service.credential)
    assert client is not None  # validate() asked for the service's URL
    body = image_payload(settings)
    log.info(f"+ POST {client.base}/images {body['repository']}@{body['digest']} "
             f"(project {body['project']})")
    image = client.post("images", body) or {}
    image_id = image.get("id")
    log.info(f"Image registered with the promotion service (image {image_id})")
    data: dict[str, Any] = {"image": image}
    if settings.scan_report:
        path = Path(settings.scan_report)
        try:
            scan = scan_payload(path.read_text(encoding="utf-8"), body["repository"],
                                body["digest"], settings.job_url)
        except ValueError as e:
            raise UsageError(f"{path}: {e}", "scan_report") from e
        recorded = client.post("scans", scan) or {}
        summary = ", ".join(f"{k} {v}" for k, v in scan["counts"].items())
        log.info(f"Scan summary recorded ({summary})")
        data["scan"] = recorded
    outputs = {"CD_SERVICE_IMAGE_ID": str(image_id)} if image_id is not None else {}
    return Result(outputs=outputs, data=data)


STEP = Step(name="register", help=__doc__ or "", settings=Settings, execute=execute,
            validate=validate)
