"""Reports from deploy, rollback and verify to the promotion service (when one is configured).

The service names images by repository and digest; a release of an image known only by a tag
or a local id cannot be reported and is logged as such.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from steps.images.reference import split_image
from steps.runtime.errors import Refused
from steps.runtime.log import Log
from steps.service.client import ServiceClient


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
    def deployment(self, message: str) -> Iterator[None]:
        """Report the deployment started, then failed (Refused) or succeeded, around the block."""
        self._deployment("started", message)
        try:
            yield
        except Refused as e:
            self._deployment("failed", e.message)
            raise
        self._deployment("succeeded", message)

    def _deployment(self, state: str, message: str) -> None:
        """POST a deployment when it starts; PATCH it as it moves on."""
        if not self.client:
            return
        body = {"state": state, **({"message": message[:1000]} if message else {})}
        if self.deployment_id is None:
            if self.template_hash:
                body["template_hash"] = self.template_hash
            answer = self.client.post("deployments", {**self._ref(), **body}) or {}
            self.deployment_id = answer.get("id")
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
