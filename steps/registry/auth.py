"""The registry's 401 challenge answered: basic auth, or the Bearer token challenge
(`WWW-Authenticate: Bearer realm=, service=, scope=`) with tokens scoped per repository and
cached until they expire."""

from __future__ import annotations

import json
import re
import threading
import time
from base64 import b64encode
from collections.abc import Callable
from urllib.parse import urlencode

from steps.images.credentials import Credentials, needs_credentials, refused
from steps.registry.errors import RegistryError
from steps.registry.transport import Transport

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class Auth:
    """What to send as Authorization to each registry, learnt from its challenges."""

    def __init__(self, credentials: Callable[[str], Credentials | None],
                 transport: Transport) -> None:
        self._credentials = credentials
        self._transport = transport
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._creds: dict[str, Credentials | None] = {}
        self._challenges: dict[str, tuple[str, dict[str, str]]] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def _creds_for(self, registry: str) -> Credentials | None:
        with self._lock:
            if registry not in self._creds:
                self._creds[registry] = self._credentials(registry)
            return self._creds[registry]

    def header(self, registry: str, scopes: tuple[str, ...]) -> str | None:
        """The Authorization header to send first: what the last challenge taught us."""
        creds = self._creds_for(registry)
        scheme, params = self._challenges.get(registry, ("", {}))
        if scheme == "bearer":
            return f"Bearer {self._token(registry, params, scopes, creds)}"
        if creds and creds.username and creds.password and scheme in ("", "basic"):
            return _basic(creds)
        return None

    def answer(self, registry: str, challenge: str, scopes: tuple[str, ...],
               sent: str | None) -> str:
        """The Authorization header that answers a 401's challenge; refused when the one
        `sent` was already the answer."""
        scheme = challenge.split(" ", 1)[0].lower()
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        creds = self._creds_for(registry)
        if scheme == "basic":
            with self._lock:
                self._challenges[registry] = ("basic", params)
            if not (creds and creds.username and creds.password):
                raise RegistryError(needs_credentials(registry), refused=True)
            if sent and sent.startswith("Basic "):
                raise RegistryError(refused(registry, creds), refused=True)
            return _basic(creds)
        if scheme == "bearer" and params.get("realm"):
            with self._lock:
                self._challenges[registry] = ("bearer", params)
            if sent and sent.startswith("Bearer "):
                if params.get("error") == "insufficient_scope" or not creds:
                    raise RegistryError(
                        f"registry {registry} denied {' '.join(scopes)}"
                        + ("" if creds else f"; {needs_credentials(registry)}"), refused=True)
                raise RegistryError(refused(registry, creds), refused=True)
            return f"Bearer {self._token(registry, params, scopes, creds, fresh=True)}"
        raise RegistryError(f"registry {registry} asked for unsupported auth: "
                            f"{challenge.split(' ', 1)[0] or 'no WWW-Authenticate'}")

    def _token(self, registry: str, params: dict[str, str], scopes: tuple[str, ...],
               creds: Credentials | None, fresh: bool = False) -> str:
        """A cached token for these scopes, else a new one (one fetch at a time per client)."""
        with self._token_lock:
            cached = self._tokens.get((registry, " ".join(scopes)))
            if cached and cached[1] > time.monotonic() and not fresh:
                return cached[0]
            return self._fetch_token(registry, params, scopes, creds)

    def _fetch_token(self, registry: str, params: dict[str, str], scopes: tuple[str, ...],
                     creds: Credentials | None) -> str:
        """Ask the challenge's realm for a token covering these scopes (cached until expiry)."""
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        query += [("scope", s) for s in scopes]
        realm = params["realm"]
        if creds and creds.identity_token:
            form = urlencode([("grant_type", "refresh_token"), ("client_id", "docker-cd"),
                              ("refresh_token", creds.identity_token), *query])
            response = self._transport.exchange("POST", realm, {
                "Content-Type": "application/x-www-form-urlencoded"}, form.encode())
        else:
            headers = {"Authorization": _basic(creds)} if creds and creds.username else {}
            sep = "&" if "?" in realm else "?"
            response = self._transport.exchange("GET", f"{realm}{sep}{urlencode(query)}",
                                                headers, None)
        if response.status in (401, 403):
            raise RegistryError(refused(registry, creds) if creds
                                else needs_credentials(registry), refused=True)
        if response.status >= 500 or response.status == 429:
            raise RegistryError(f"token service {realm}: HTTP {response.status}", transient=True)
        if response.status != 200:
            raise RegistryError(f"token service {realm} for registry {registry} answered "
                                f"HTTP {response.status}")
        try:
            answer = json.loads(response.body)
            token = answer.get("token") or answer["access_token"]
        except (ValueError, KeyError) as e:
            raise RegistryError(f"token service {realm} for registry {registry} gave no token"
                                ) from e
        lifetime = float(answer.get("expires_in") or 60)
        with self._lock:
            self._tokens[(registry, " ".join(scopes))] = (
                token, time.monotonic() + max(lifetime - 10, lifetime / 2))
        return token


def _basic(creds: Credentials) -> str:
    pair = f"{creds.username}:{creds.password}".encode()
    return "Basic " + b64encode(pair).decode()
