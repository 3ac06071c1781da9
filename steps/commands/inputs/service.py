"""The promotion service a step reports to (or asks), and the credential it shows."""

from __future__ import annotations

from dataclasses import dataclass

from steps.runtime.inputs import option


@dataclass(frozen=True)
class Service:
    """The promotion service a step reports to (or asks)."""

    service_url: str | None = option(
        "Promotion service base URL; reporting is skipped when unset.", env=("CD_SERVICE_URL",),
        metavar="URL")
    service_token: str | None = option(
        "Bearer token for the promotion service (a long-lived token: Jenkins, GitLab without "
        "ID tokens).", env=("CD_SERVICE_TOKEN",), secret=True)
    service_id_token: str | None = option(
        "This job's GitLab ID token for the service (the template's id_tokens); sent instead "
        "of the service token when set.", env=("CD_SERVICE_ID_TOKEN",), secret=True,
        metavar="JWT")
    service_auth: str = option(
        "id_token: the job's ID token when it has one, else the service token; token: always "
        "the service token (a service without PROMOTION_OIDC_ISSUER).",
        env=("CD_SERVICE_AUTH",), default="id_token", choices=("id_token", "token"))

    @property
    def uses_id_token(self) -> bool:
        """Does the step show the job's ID token (whose claims GitLab signed)?"""
        return self.service_auth == "id_token" and bool(self.service_id_token)

    @property
    def credential(self) -> str | None:
        """What the step authenticates with: the job's ID token, else the service token."""
        return self.service_id_token if self.uses_id_token else self.service_token
