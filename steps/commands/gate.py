"""Ask the promotion service's gate: exit 0 when allowed, 1 when refused (with every reason).

Without --environment it is the merge-request gate (for GitLab tiers without external status
checks): may a merge request whose head is this commit merge? The image built from the
commit must be registered, its scan must pass and it must not be revoked. A merge-request
pipeline job runs it after the scan, so a refusal fails the pipeline ("Pipelines must
succeed" then blocks the merge).

With --environment it is the deploy gate: may this image (CD_IMAGE) go into that environment
now? Asking changes nothing. With --claim (the deploy jobs), this pipeline claims what it is
about to deploy: its promotion (CD_PROMOTION_ID, else the one in flight), which the first
pipeline to claim it deploys and no other; an old deploy job run again (GitLab's environment
"Rollback") claims a rollback to its image when that was verified there. The pipeline is the
ID token's (or CI_PIPELINE_ID with a service token).

--wait SECONDS keeps asking while the answer is only "not ready yet" (image or scan missing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from steps.commands import Step
from steps.commands.inputs.ci import JOB_URL
from steps.commands.inputs.pipeline import Pipeline
from steps.commands.inputs.service import Service
from steps.images.reference import split_image
from steps.runtime.errors import Refused, UsageError
from steps.runtime.inputs import group, option
from steps.runtime.outputs import Result
from steps.service.client import reason_lines

if TYPE_CHECKING:
    from steps.context import Context

POLL_SECONDS = 5.0
NOT_READY = frozenset({"image_missing", "scan_missing"})


@dataclass(frozen=True)
class Settings:
    """The gate step's inputs."""

    image: str | None = option(
        "The image, by digest (repository@sha256:...); needed with --environment.",
        env=("CD_IMAGE",), positional=True)
    release_id: int | None = option(
        "The promotion service's release (register's CD_RELEASE_ID); with --environment the "
        "gate asks about it, every member, instead of the one image.", env=("CD_RELEASE_ID",),
        metavar="ID")
    environment: str | None = option(
        "Ask the deploy gate for this environment (else the merge-request gate for the "
        "commit).", env=("CD_GATE_ENVIRONMENT", "CD_TARGET_ENVIRONMENT"))
    project: str | None = option("Project path in the service (group/name).",
                                 env=("CD_SERVICE_PROJECT", "CI_PROJECT_PATH", "JOB_NAME"))
    promotion_id: int | None = option("The promotion a service-triggered pipeline deploys.",
                                      env=("CD_PROMOTION_ID",))
    wait: float = option("Seconds to keep asking while the image or its scan is not recorded "
                         "yet.", env=("CD_GATE_WAIT",), default=0.0, metavar="SECONDS")
    claim: bool = option("Claim the promotion for this pipeline before deploying (deploy "
                         "jobs); needs --environment.", env=("CD_GATE_CLAIM",), default=False)
    job_url: str | None = JOB_URL.field()
    pipeline: Pipeline = group(Pipeline)
    service: Service = group(Service)


def validate(settings: Settings) -> None:
    """Check the inputs before asking the service."""
    pipeline = settings.pipeline
    if not settings.service.service_url:
        raise UsageError("no promotion service to ask: set CD_SERVICE_URL", "service_url")
    if settings.wait < 0:
        raise UsageError(f"must be 0 or more seconds; got {settings.wait}", "wait")
    if settings.claim and not settings.environment:
        raise UsageError("a claim is for an environment: give --environment (the deploy "
                         "job's CI_ENVIRONMENT_NAME)", "claim")
    if settings.environment:
        if settings.release_id is None and (not settings.image
                                            or split_image(settings.image) is None):
            raise UsageError(f"the deploy gate needs the image by digest "
                             f"(repository@sha256:..., the build job's CD_IMAGE); got "
                             f"{settings.image or 'nothing'}; or the release: CD_RELEASE_ID",
                             "image")
        if pipeline.pipeline_id and not str(pipeline.pipeline_id).isdigit():
            raise UsageError(f"must be a number; got {pipeline.pipeline_id!r}", "pipeline_id")
        return
    if not (settings.project or pipeline.project_path):
        raise UsageError("which project? set CD_SERVICE_PROJECT (GitLab sets CI_PROJECT_PATH)",
                         "project")
    sha = (pipeline.commit_sha or "").lower()
    if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
        raise UsageError(f"the merge-request gate needs the full 40-hex commit SHA (GitLab sets "
                         f"CI_COMMIT_SHA); got {pipeline.commit_sha or 'nothing'}", "commit_sha")


def query(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The gate endpoint and its query for these settings."""
    pipeline = settings.pipeline
    if settings.environment:
        params: dict[str, Any] = {**subject(settings), "environment": settings.environment}
        if settings.promotion_id is not None:
            params["promotion_id"] = settings.promotion_id
            if pipeline.pipeline_id:
                params["pipeline_id"] = int(pipeline.pipeline_id)
        return "gate", params
    return "merge-request-checks/gate", {
        "project": settings.project or pipeline.project_path,
        "sha": (pipeline.commit_sha or "").lower()}


def subject(settings: Settings) -> dict[str, Any]:
    """What the deploy gate is asked about: the release when known, else the one image."""
    if settings.release_id is not None:
        return {"release_id": settings.release_id}
    repository, digest = split_image(settings.image or "")  # type: ignore[misc]
    return {"repository": repository, "digest": digest}


def described(params: dict[str, Any]) -> str:
    """`release 7` or `registry/app@sha256:...`, for the log."""
    if "release_id" in params:
        return f"release {params['release_id']}"
    return f"{params['repository']}@{params['digest']}"


def claim_body(settings: Settings) -> dict[str, Any]:
    """What the deploy job claims: its release (or image), environment, promotion, pipeline."""
    body: dict[str, Any] = {"kind": "deploy", **subject(settings),
                            "environment": settings.environment,
                            "promotion_id": settings.promotion_id,
                            "pipeline_id": int(settings.pipeline.pipeline_id)
                            if settings.pipeline.pipeline_id else None,
                            "job_url": settings.job_url}
    return {k: v for k, v in body.items() if v is not None}


def execute(settings: Settings, ctx: Context) -> Result:
    """Ask (and with --wait, ask again while not ready); refuse with the reasons."""
    log = ctx.log
    client = ctx.service(settings.service.service_url, settings.service.credential)
    assert client is not None  # validate() asked for the service's URL
    if settings.claim:
        return claim(settings, client, log)
    path, params = query(settings)
    what = (f"{described(params)} into {settings.environment}"
            if settings.environment else f"merge of {params['project']} at {params['sha'][:12]}")
    deadline = time.monotonic() + settings.wait
    while True:
        log.info(f"+ GET {client.base}/{path} ({what})")
        answer = client.get(path, **params) or {}
        reasons = answer.get("reasons") or []
        not_ready = bool(reasons) and all(r.get("code") in NOT_READY for r in reasons)
        if answer.get("allowed") or not not_ready or time.monotonic() >= deadline:
            break
        log.info("Not ready yet: " + "; ".join(reason_lines(reasons)) + f"; asking again in "
                 f"{POLL_SECONDS:.0f}s")
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    if not answer.get("allowed"):
        raise Refused(f"the gate refused the {what}", reason_lines(reasons))
    log.info(f"The gate allows the {what}")
    return Result(outputs={"CD_GATE": "allowed"}, data={"gate": answer})


def claim(settings: Settings, client: Any, log: Any) -> Result:
    """Claim the deploy for this pipeline; a refusal (409) ends the step with the reasons."""
    body = claim_body(settings)
    what = f"{described(body)} into {settings.environment}"
    log.info(f"+ POST {client.base}/claims ({what}"
             + (f", promotion {settings.promotion_id}" if settings.promotion_id else "") + ")")
    try:
        answer = client.post("claims", body) or {}
    except Refused as e:
        raise Refused(f"the gate refused the {what}", e.reasons) from None
    promotion = answer.get("promotion") or {}
    kind = "rollback" if promotion.get("kind") == "rollback" else "promotion"
    log.info(f"This pipeline deploys {kind} {promotion.get('id')}: the gate allows the {what}")
    if answer.get("hold"):
        log.info(f"{settings.environment} is held: {answer['hold']['reason']} (by "
                 f"{answer['hold']['by']}; {answer['hold']['lift']})")
    return Result(outputs={"CD_GATE": "allowed", "CD_PROMOTION_ID": str(promotion.get("id"))},
                  data={"claim": answer})


STEP = Step(name="gate", help=__doc__ or "", settings=Settings, execute=execute,
            validate=validate)
