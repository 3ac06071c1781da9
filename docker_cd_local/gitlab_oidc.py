"""GitLab as an OpenID Connect issuer of CI/CD ID tokens, for the GitLab API double.

GitLab signs each job's ID token (the `id_tokens:` keyword) with RS256 and publishes its keys
at `/oauth/discovery/keys` (listed as `jwks_uri` in `/.well-known/openid-configuration`). This
module holds one RSA key and mints tokens with the claims GitLab puts in them (names and value
types as lib/gitlab/ci/jwt.rb and jwt_v2.rb write them: ids as strings, `sub` from
project_path, ref_type and ref), so the service verifies them the way it verifies GitLab's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KEYS_PATH = "/oauth/discovery/keys"
DISCOVERY_PATH = "/.well-known/openid-configuration"


class IdTokenIssuer:
    """One signing key, its JWKS, and ID tokens minted with it."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        # GitLab's kid is the key's RFC 7638 thumbprint
        canonical = json.dumps({k: public[k] for k in ("e", "kty", "n")}, separators=(",", ":"),
                               sort_keys=True)
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()
                                            ).rstrip(b"=").decode()
        self._public = {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def jwks(self) -> dict[str, Any]:
        """What GitLab answers at /oauth/discovery/keys."""
        return {"keys": [self._public]}

    @staticmethod
    def discovery(issuer: str) -> dict[str, Any]:
        """The parts of GitLab's /.well-known/openid-configuration a verifier reads."""
        return {"issuer": issuer, "jwks_uri": f"{issuer}{KEYS_PATH}",
                "id_token_signing_alg_values_supported": ["RS256"],
                "subject_types_supported": ["public"], "response_types_supported": ["code"]}

    def mint(self, issuer: str, *, audience: str, project_path: str, pipeline_id: int,
             user_login: str, project_id: int = 42, job_id: int | None = None,
             ref: str = "main", ref_type: str = "branch", sha: str = "0" * 40,
             environment: str | None = None, pipeline_source: str = "push",
             ttl: int = 3600, key: Any = None, without: tuple[str, ...] = (),
             **extra: Any) -> str:
        """An ID token as GitLab signs it for a job (`key` signs with another key: a forgery;
        `without` leaves claims out, `extra` adds or replaces some)."""
        now = int(time.time())
        namespace = project_path.rsplit("/", 1)[0]
        claims: dict[str, Any] = {
            "namespace_id": "7", "namespace_path": namespace,
            "project_id": str(project_id), "project_path": project_path,
            "user_id": "12", "user_login": user_login,
            "user_email": f"{user_login}@example.com", "user_access_level": "developer",
            "pipeline_id": str(pipeline_id), "pipeline_source": pipeline_source,
            "job_id": str(job_id if job_id is not None else pipeline_id * 10),
            "ref": ref, "ref_type": ref_type, "ref_path": f"refs/heads/{ref}",
            "ref_protected": "true", "runner_id": 1, "runner_environment": "self-hosted",
            "sha": sha, "project_visibility": "private",
            "jti": str(uuid.uuid4()), "iss": issuer, "iat": now, "nbf": now - 5,
            "exp": now + ttl, "sub": f"project_path:{project_path}:ref_type:{ref_type}:ref:{ref}",
            "aud": audience,
        }
        if environment is not None:
            claims.update(environment=environment, environment_protected="false",
                          deployment_tier=environment if environment in (
                              "staging", "production", "testing") else "other",
                          environment_action="start")
        claims.update(extra)
        for name in without:
            claims.pop(name, None)
        return jwt.encode(claims, key or self._key, algorithm="RS256",
                          headers={"kid": self.kid, "typ": "JWT"})
