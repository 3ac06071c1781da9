"""Reports from deploy, rollback and verify to the promotion service (when one is configured).

The service names images by repository and digest; a release of an image known only by a tag
or a local id cannot be reported and is logged as such. A deployment reported `started` is
always closed: `succeeded`, or `failed` with the reason, whatever ended it (a refusal, an
exception, a pull that failed, the job being canceled with SIGTERM). Only a job killed outright
leaves it open, and the service closes it after a timeout.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from steps.images.reference import split_image
from steps.runtime.errors import StepError
from steps.runtime.log import Log
from steps.service.client import ServiceClient


class Terminated(StepError):
    """The job was asked to stop (SIGTERM: GitLab cancels a job this way)."""


class Reporter:
    """Sends a deploy job's reports; does nothing without a client (no --service-url)."""

    def __init__(self, client: ServiceClient | None, job_url: str | None, image: str | None,
                 environment: str, log: Log, template_hash: str | None = None) -> None:
        self.log = log
        self.template_hash = template_hash  # what the deployment rolls out: approvals are for it
        self.environment = environment
        self.job_url = job_url
        self.client = client
        self.image = split_image(image) if image else None
        self.deployment_id: int | None = None
        if self.client and not self.image:
            log.warn(f"not reporting to the promotion service: the image {image or '(none)'} "
                     "is not named by digest (set CD_IMAGE to repository@sha256:...)")
            self.client = None

    def _ref(self) -> dict[str, Any]:
        repository, digest = self.image  # type: ignore[misc]
        body: dict[str, Any] = {"repository": repository, "digest": digest,
                                "environment": self.environment}
        if self.job_url:
            body["job_url"] = self.job_url
        return body

    @contextmanager
    def deployment(self, message: str, release_id: str | None = None,
                   rollback_of: str | None = None) -> Iterator[None]:
        """Report the deployment started (with the target's release id), then succeeded, or
        failed with the reason of whatever stopped the block."""
        ids = {k: v for k, v in (("record_id", release_id), ("rollback_of", rollback_of)) if v}
        self._deployment("started", message, ids)
        try:
            with _sigterm_raises():
                yield
        except BaseException as e:
            self._close_failed(e)
            raise
        self._deployment("succeeded", message)

    def _close_failed(self, error: BaseException) -> None:
        """Report `failed` with the reason; a service that cannot hear it must not hide why."""
        reason = (error.message if isinstance(error, StepError)
                  else f"{type(error).__name__}: {error}")
        try:
            self._deployment("failed", reason)
        except Exception as e:  # the original failure is what the job ends with
            self.log.warn(f"could not report the failed deployment to the promotion service: "
                          f"{e}")

    def _deployment(self, state: str, message: str, extra: dict[str, Any] | None = None) -> None:
        """POST a deployment when it starts; PATCH it as it moves on."""
        if not self.client:
            return
        body = {"state": state, **({"message": message[:1000]} if message else {})}
        if self.deployment_id is None:
            if self.template_hash:
                body["template_hash"] = self.template_hash
            answer = self.client.post("deployments", {**self._ref(), **body, **(extra or {})})
            self.deployment_id = (answer or {}).get("id")
        else:
            self.client.request("PATCH", f"deployments/{self.deployment_id}", json=body)
        self.log.info(f"Reported deployment {state} to the promotion service")

    def verification(self, passed: bool, details: dict[str, Any]) -> None:
        """POST the outcome of verify's checks."""
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
