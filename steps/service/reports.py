"""Reports from deploy, rollback and verify to the promotion service (when one is configured).

The service knows what is deployed by its release (`release_id`, CD_RELEASE_ID, every member),
else by the one image's repository and digest; an image known only by a tag or a local id
cannot be reported and is logged as such. `record_id` is the target's record of the deploy.
A deployment reported `started` is always closed: `succeeded`, or `failed` with the reason,
whatever ended it (a refusal, an exception, a pull that failed, the job being canceled with
SIGTERM). Only a job killed outright leaves it open, and the service closes it after a timeout.

A deploy refused before it starts (the release's template not the checkout's, a template or
variable to fix: exit 1 or 2, which no retry fixes) is reported at once as a deployment
`failed` with the reason, so the promotion it was to deploy fails now, not when something
else closes it. An outside system's failure before the start (exit 3) is not reported: the
job's `retry: exit_codes: [3]` deploys the same promotion again. Every reason sent is masked
as the log is.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from steps.images.reference import split_image
from steps.runtime.errors import Refused, StepError, UsageError
from steps.runtime.log import Log
from steps.service.client import ServiceClient


class Terminated(StepError):
    """The job was asked to stop (SIGTERM: GitLab cancels a job this way)."""


class Reporter:
    """Sends a deploy job's reports; does nothing without a client (no --service-url)."""

    def __init__(self, client: ServiceClient | None, job_url: str | None, image: str | None,
                 environment: str, log: Log, template_hash: str | None = None,
                 release_id: int | None = None) -> None:
        self.log = log
        self.template_hash = template_hash  # what the deployment rolls out: approvals are for it
        self.environment = environment
        self.job_url = job_url
        self.client = client
        self.release_id = release_id
        self.image = split_image(image) if image else None
        self.deployment_id: int | None = None
        if self.client and not self.image and release_id is None:
            log.warn(f"not reporting to the promotion service: no release (CD_RELEASE_ID) and "
                     f"the image {image or '(none)'} is not named by digest (set CD_IMAGE to "
                     "repository@sha256:...)")
            self.client = None

    def _ref(self) -> dict[str, Any]:
        """What is reported on: the service's release when known, else the image."""
        body: dict[str, Any] = {"environment": self.environment}
        if self.release_id is not None:
            body["release_id"] = self.release_id
        else:
            body["repository"], body["digest"] = self.image  # type: ignore[misc]
        if self.job_url:
            body["job_url"] = self.job_url
        return body

    @contextmanager
    def deployment(self, message: str, record_id: str | None = None,
                   rollback_of: str | None = None) -> Iterator[None]:
        """Report the deployment started (with the target's record id), then succeeded, or
        failed with the reason of whatever stopped the block."""
        ids = {k: v for k, v in (("record_id", record_id), ("rollback_of", rollback_of)) if v}
        self._deployment("started", message, ids)
        try:
            with _sigterm_raises():
                yield
        except BaseException as e:
            self._close_failed(e)
            raise
        self._deployment("succeeded", message)

    @contextmanager
    def before_start(self) -> Iterator[None]:
        """What the step checks before it deploys: a refusal there (Refused or UsageError:
        exit 1 or 2) is reported as a deployment `failed` with the reason, nothing deployed,
        so the promotion in flight fails at once. The error still ends the step unchanged;
        anything else (exit 3: a retry may deploy the same promotion) is not reported."""
        try:
            yield
        except (Refused, UsageError) as e:
            if self.deployment_id is None:
                self._close_failed(e, started=False)
            raise

    def _close_failed(self, error: BaseException, started: bool = True) -> None:
        """Report `failed` with the reason; a service that cannot hear it must not hide why."""
        reason = (error.message if isinstance(error, StepError)
                  else f"{type(error).__name__}: {error}")
        if isinstance(error, Refused) and error.reasons:
            reason += " (" + "; ".join(error.reasons) + ")"
        try:
            if started:
                self._deployment("failed", reason)
            else:  # no template_hash: nothing was rolled out, no approval is in question
                self._deployment("failed", reason, with_template=False,
                                 note=" (refused before it started: nothing was deployed)")
        except Exception as e:  # the original failure is what the job ends with
            self.log.warn(f"could not report the failed deployment to the promotion service: "
                          f"{e}")

    def _deployment(self, state: str, message: str, extra: dict[str, Any] | None = None, *,
                    with_template: bool = True, note: str = "") -> None:
        """POST a deployment when it starts (or when it is refused before it could); PATCH it
        as it moves on. The message is masked as the log is (it may quote a variable)."""
        if not self.client:
            return
        message = self.log.masker(message)[:1000]
        body = {"state": state, **({"message": message} if message else {})}
        if self.deployment_id is None:
            if self.template_hash and with_template:
                body["template_hash"] = self.template_hash
            answer = self.client.post("deployments", {**self._ref(), **body, **(extra or {})})
            self.deployment_id = (answer or {}).get("id")
        else:
            self.client.request("PATCH", f"deployments/{self.deployment_id}", json=body)
        self.log.info(f"Reported deployment {state} to the promotion service{note}")

    def verification(self, passed: bool, details: dict[str, Any]) -> None:
        """POST the outcome of verify's checks (`details` names the record checked)."""
        if not self.client:
            return
        self.client.post("verifications", {**self._ref(), "passed": passed, "details": details})
        self.log.info(f"Reported verification {'passed' if passed else 'failed'} to the "
                      "promotion service")


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Inside the block, SIGTERM raises Terminated (so the deployment is reported failed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Terminated("the job was canceled (SIGTERM) while it deployed")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
