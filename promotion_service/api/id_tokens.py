"""GitLab ID tokens: a CI job's OIDC JWT, signed by GitLab (RS256), checked with PyJWT against
the instance's JWKS, for the audience this service expects.

    PROMOTION_OIDC_ISSUER     GitLab's URL, the tokens' `iss` (e.g. https://gitlab.example.com)
    PROMOTION_OIDC_AUDIENCE   the `aud` the jobs ask for (the template's service_audience input)
    PROMOTION_OIDC_JWKS_URL   where GitLab publishes its keys [<issuer>/oauth/discovery/keys]

A job with a valid token acts as role `ci` for the project its token names (`project_path`),
and what it says about its pipeline (project, ref, commit, pipeline, job, environment, user)
comes from the signed claims, never from what a developer can set.
"""

from __future__ import annotations

import threading
from typing import Any

import jwt
from flask import Flask

from ..config import ConfigError
from ..domain.identity import IdentityError, PipelineIdentity, from_gitlab
from ..errors import ServiceError, Unauthorized

REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub", "project_path", "pipeline_id", "user_login")
LEEWAY_SECONDS = 30  # clocks of GitLab and the service drift a little


class KeysUnavailable(ServiceError):
    """GitLab's keys could not be fetched: the caller may try again."""

    status = 503


def looks_like_jwt(token: str) -> bool:
    """A JWT (three base64url parts, a JSON header) rather than a service token."""
    return token.startswith("eyJ") and token.count(".") == 2


class IdTokenVerifier:
    """Checks ID tokens against one GitLab instance's keys (fetched once, refetched for a new
    key id, so GitLab may rotate its keys)."""

    def __init__(self, issuer: str, audience: str, jwks_url: str | None = None,
                 timeout: float = 10.0) -> None:
        self.issuer, self.audience = issuer.rstrip("/"), audience
        self.jwks_url = jwks_url or f"{self.issuer}/oauth/discovery/keys"
        self._keys = jwt.PyJWKClient(self.jwks_url, cache_keys=True, lifespan=3600,
                                     timeout=int(timeout))
        self._lock = threading.Lock()

    def verify(self, token: str) -> PipelineIdentity:
        """The pipeline the token speaks for, or Unauthorized saying what is wrong with it."""
        try:
            with self._lock:  # PyJWKClient's cache is not meant for concurrent refreshes
                key = self._keys.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as e:
            raise KeysUnavailable(f"cannot fetch GitLab's signing keys from {self.jwks_url}: "
                                  f"{e}") from None
        except jwt.PyJWKClientError as e:
            raise Unauthorized(f"ID token: {e} (is it from {self.issuer}?)") from None
        except jwt.InvalidTokenError as e:
            raise Unauthorized(f"ID token: not a valid JWT ({e})") from None
        try:
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=self.audience,
                                issuer=self.issuer, leeway=LEEWAY_SECONDS,
                                options={"require": list(REQUIRED_CLAIMS)})
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"ID token: its audience is not {self.audience!r}; set the "
                               "template's service_audience input (the job's id_tokens aud) "
                               "to PROMOTION_OIDC_AUDIENCE") from None
        except jwt.InvalidTokenError as e:
            raise Unauthorized(f"ID token: {e}") from None
        return pipeline_identity(claims)


def pipeline_identity(claims: dict[str, Any]) -> PipelineIdentity:
    """GitLab's claims (lib/gitlab/ci/jwt.rb) as the service keeps them."""
    try:
        return PipelineIdentity(
            project_path=str(claims["project_path"]),
            pipeline_id=int(claims["pipeline_id"]),
            job_id=int(claims["job_id"]) if claims.get("job_id") else None,
            ref=claims.get("ref"), sha=claims.get("sha"),
            user=from_gitlab(str(claims["user_login"])),
            environment=claims.get("environment") or None,
            pipeline_source=claims.get("pipeline_source"),
        )
    except (ValueError, TypeError, IdentityError) as e:
        raise Unauthorized(f"ID token: a claim is not what GitLab sends ({e})") from None


def init_app(app: Flask) -> None:
    """Set up the verifier when PROMOTION_OIDC_ISSUER is set (else ID tokens are refused)."""
    issuer = app.config.get("OIDC_ISSUER")
    if not issuer:
        app.extensions["promotion_id_tokens"] = None
        return
    audience = app.config.get("OIDC_AUDIENCE")
    if not audience:
        raise ConfigError("PROMOTION_OIDC_AUDIENCE is not set; set it to the audience the CI "
                          "jobs ask for (the template's service_audience input, e.g. the "
                          "service's URL)")
    app.extensions["promotion_id_tokens"] = IdTokenVerifier(
        issuer, audience, app.config.get("OIDC_JWKS_URL"))
