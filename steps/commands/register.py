"""Register the release with the promotion service and write its id as CD_RELEASE_ID.

It records the release's images by digest, the template's hash, the commit, ref, tags and
pipeline.

A release of several images: every CD_IMAGE_<NAME> the build jobs wrote (or --member
NAME=IMAGE), each the Compose service it runs as, plus the template's third-party images pinned
by digest (each written as its CD_IMAGE_<NAME> too, so deploy runs the pin); POST /releases.
One image (CD_IMAGE alone) in a repository with a template (compose.yml in --template-dir):
POST /releases, one member (`app`) and the template's hash, so a deploy of the release can
tell the checkout's template from the release's; without a template: POST /images, its
one-member release (no template hash). Registration is idempotent (the same members and
template answer with the release already registered), so a retried job changes nothing. With
`--scan-report` (the scan step's `--json` file or its dotenv; `scan-{name}.json` for each built
member of a release) the scan summaries are recorded as well.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.commands import Step
from steps.commands.inputs.ci import COMMIT_TIME, JOB_URL
from steps.commands.inputs.environment import UNPINNED
from steps.commands.inputs.pipeline import Pipeline
from steps.commands.inputs.registry import PLAIN_HTTP, RETRIES, RegistryAuth
from steps.commands.inputs.service import Service
from steps.images.reference import split_image
from steps.release.members import member_variables, variable
from steps.runtime.errors import UsageError
from steps.runtime.inputs import group, option
from steps.runtime.outputs import Result

if TYPE_CHECKING:
    from steps.context import Context
    from steps.runtime.log import Log
    from steps.service.client import ServiceClient

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
    member: Mapping[str, str] | None = option(
        "A built member of the release, NAME=repository@sha256:... (repeat) [default: every "
        "CD_IMAGE_<NAME> variable].", env=("CD_MEMBERS",), metavar="NAME=IMAGE")
    template_dir: str = option("Directory holding compose.yml (a release's template hash and "
                               "third-party images).", env=("CD_TEMPLATE_DIR",),
                               default="deploy", metavar="DIR")
    unpinned: tuple[str, ...] = UNPINNED.field()
    job_url: str | None = JOB_URL.field()
    retries: int = RETRIES.field()
    plain_http: tuple[str, ...] = PLAIN_HTTP.field()
    auth: RegistryAuth = group(RegistryAuth)
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
    if settings.image and not settings.member:
        try:
            image_ref(settings.image)
        except ValueError as e:
            raise UsageError(str(e), "image") from e
    if not (settings.project or pipeline.project_path):
        raise UsageError("which project? set CD_SERVICE_PROJECT (GitLab sets CI_PROJECT_PATH)",
                         "project")
    if pipeline.pipeline_id and not str(pipeline.pipeline_id).isdigit():
        raise UsageError(f"must be a number; got {pipeline.pipeline_id!r}", "pipeline_id")
    if settings.scan_report and "{name}" not in settings.scan_report \
            and not Path(settings.scan_report).is_file():
        raise UsageError(f"{settings.scan_report} does not exist (the scan job's --json file)",
                         "scan_report")


def image_payload(settings: Settings, with_image: bool = True) -> dict[str, Any]:
    """The registration body: only what is known, so the service's validation names real faults."""
    pipeline = settings.pipeline
    body: dict[str, Any] = {
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
    if with_image:
        body["repository"], body["digest"] = image_ref(settings.image or "")
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
    """Register the release (or the one image) and the scan summaries; report its id."""
    client = ctx.service(settings.service.service_url, settings.service.credential)
    assert client is not None  # validate() asked for the service's URL
    if settings.member or member_variables(ctx.environ):
        return register_release(settings, ctx, client)
    if not settings.image:
        raise UsageError("which image? give repository@sha256:... (CD_IMAGE), or the members "
                         "of a release (CD_IMAGE_<NAME> from each build job, or --member)",
                         "image")
    return register_image(settings, ctx, client)


def register_image(settings: Settings, ctx: Context, client: ServiceClient) -> Result:
    """The one image, then its scan summary. In a repository with a template (compose.yml in
    --template-dir): POST /releases, the image as the member `app` (as POST /images names it)
    with the template's hash; without one: POST /images, its one-member release (no template
    hash). The outputs are the same either way."""
    from steps.service import releases

    log = ctx.log
    body = image_payload(settings)
    repository, digest = body["repository"], body["digest"]
    scan = (read_scan(Path(settings.scan_report), repository, digest, settings.job_url)
            if settings.scan_report else None)
    directory = Path(settings.template_dir)
    if releases.has_template(directory):
        body = image_payload(settings, with_image=False) | {
            "members": [{"name": releases.ONE_IMAGE_MEMBER, "repository": repository,
                         "digest": digest, "built": True}],
            "template_hash": releases.template_hash(directory)}
        log.info(f"+ POST {client.base}/releases {repository}@{digest} (project "
                 f"{body['project']}, template {body['template_hash']})")
        release = client.post("releases", body) or {}
        image_id = next((m.get("image_id") for m in release.get("members") or []), None)
        release_id = release.get("id")
        log.info(f"Release {release_id} registered with the promotion service (image "
                 f"{image_id}, template {body['template_hash']})")
        data: dict[str, Any] = {"image": {"id": image_id, "repository": repository,
                                          "digest": digest, "release_id": release_id},
                                "release": release}
    else:
        log.info(f"+ POST {client.base}/images {repository}@{digest} "
                 f"(project {body['project']})")
        image = client.post("images", body) or {}
        image_id, release_id = image.get("id"), image.get("release_id")
        log.info(f"Image registered with the promotion service (image {image_id})")
        data = {"image": image}
    if scan is not None:
        data["scan"] = post_scan(client, scan, log)
    outputs = {"CD_SERVICE_IMAGE_ID": str(image_id)} if image_id is not None else {}
    if release_id is not None:
        outputs["CD_RELEASE_ID"] = str(release_id)
    return Result(outputs=outputs, data=data)


def register_release(settings: Settings, ctx: Context, client: ServiceClient) -> Result:
    """POST /releases: every member and the template hash; then each built member's scan."""
    from steps.service import releases

    log = ctx.log
    directory = Path(settings.template_dir)
    services = releases.template_services(directory, ctx.environ)
    built = releases.built_members(settings.member or {}, ctx.environ, services)
    store = settings.auth.store()
    registry = ctx.registry(store, settings.retries + 1, settings.plain_http)
    pinned = releases.third_party(services, built, settings.unpinned, registry, log)
    if settings.scan_report and "{name}" not in settings.scan_report and len(built) > 1:
        raise UsageError(f"{settings.scan_report} cannot be the scan of every member; write "
                         "--scan-report scan-{name}.json (one file per member)", "scan_report")
    scans = {m.name: read_scan(Path(settings.scan_report.replace("{name}", m.name)),
                               m.repository, m.digest, settings.job_url)
             for m in built} if settings.scan_report else {}
    body = image_payload(settings, with_image=False) | {
        "members": [m.body() for m in [*built, *pinned]],
        "template_hash": releases.template_hash(directory)}
    log.info(f"+ POST {client.base}/releases (project {body['project']}): "
             + ", ".join(str(m) for m in [*built, *pinned]))
    release = client.post("releases", body) or {}
    log.info(f"Release {release.get('id')} registered with the promotion service "
             f"({release.get('digest')})")
    data: dict[str, Any] = {"release": release,
                            "scans": {name: post_scan(client, scan, log)
                                      for name, scan in scans.items()}}
    outputs = {"CD_RELEASE_ID": str(release["id"])} if release.get("id") is not None else {}
    # later jobs of this pipeline (deploy-test) run the digests the release pinned
    outputs |= {variable(m.name): f"{m.repository}@{m.digest}" for m in pinned}
    return Result(outputs=outputs, data=data)


def read_scan(path: Path, repository: str, digest: str, job_url: str | None) -> dict[str, Any]:
    """One image's scan summary from the scan step's file, read before anything is posted so
    a wrong path registers nothing."""
    try:
        return scan_payload(path.read_text(encoding="utf-8"), repository, digest, job_url)
    except OSError as e:
        raise UsageError(f"{path}: cannot read the scan report ({e.strerror})",
                         "scan_report") from e
    except ValueError as e:
        raise UsageError(f"{path}: {e}", "scan_report") from e


def post_scan(client: ServiceClient, scan: dict[str, Any], log: Log) -> dict[str, Any]:
    """Record one image's scan summary."""
    repository, digest = scan["repository"], scan["digest"]
    recorded = client.post("scans", scan) or {}
    summary = ", ".join(f"{k} {v}" for k, v in scan["counts"].items())
    log.info(f"Scan summary recorded ({summary}) for {repository}@{digest[:19]}")
    return recorded


STEP = Step(name="register", help=__doc__ or "", settings=Settings, execute=execute,
            validate=validate)
