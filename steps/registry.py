"""A small client for the registry HTTP API (OCI Distribution Spec), lean enough for a CLI.

Why not a library: python-dxf sends tokens only over https and refuses auth on plain-http
registries, and has no retries; oras-py re-serialises manifests (changing their digest) and
validates them as OCI image manifests only, with no cross-repository mounts. Both pull in
requests, which alone costs more start-up time than a same-repository retag may take. So
this client sits on the standard library's http.client (one kept-alive connection per host
and thread), with tenacity for retries (steps.retry: imported only when a retry is needed).

Auth: anonymous, basic, and the Bearer token challenge (`WWW-Authenticate: Bearer realm=,
service=, scope=`), with tokens scoped per repository and cached until they expire.
Transient failures (5xx, 429, connection refused or reset, timeouts) are retried with
backoff; after that, or when credentials are refused, an ExternalError names the registry.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple
from urllib.parse import urlencode, urljoin, urlsplit

from steps.credentials import Credentials
from steps.errors import ExternalError
from steps.retry import Transient, call_with_retries
from steps.runtime import Option

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))
_LOOPBACK = ("localhost", "127.", "[::1]")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_CHUNK = 1 << 20

# Options every step that talks to a registry shares (spliced into their options).
REGISTRY_OPTIONS = (
    Option("retries", "Retries of a transient registry failure (5xx, connection reset), with "
           "backoff.", env=("CD_RETRIES",), kind="int", default=3),
    Option("plain-http", "Registries reached over plain HTTP (loopback ones always are).",
           env=("CD_PLAIN_HTTP_REGISTRIES",), kind="list", default=(), metavar="HOST"),
)


class Repo(NamedTuple):
    """A repository on a registry, and whether the caller will push to it (token scope)."""

    registry: str
    name: str
    push: bool = False

    @property
    def scope(self) -> str:
        return f"repository:{self.name}:{'pull,push' if self.push else 'pull'}"


class Manifest(NamedTuple):
    """A manifest exactly as the registry serves it: re-PUT these bytes and the digest holds."""

    body: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.json()

    def children(self) -> list[dict[str, Any]]:
        """The manifests an index points at (descriptors with digest, mediaType, size)."""
        return list(self.json().get("manifests", [])) if self.is_index else []

    def blobs(self) -> list[dict[str, Any]]:
        """Config and layer descriptors of an image manifest (none for an index)."""
        if self.is_index:
            return []
        data = self.json()
        return [d for d in [data.get("config"), *data.get("layers", [])] if d]


class Response(NamedTuple):
    """An answer from the registry; `raw` is the open stream when one was asked for."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    raw: http.client.HTTPResponse | None = None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


def digest_of(body: bytes) -> str:
    """The sha256 digest a registry gives these bytes."""
    import hashlib  # loads OpenSSL: only when a digest must be computed

    return "sha256:" + hashlib.sha256(body).hexdigest()


def registry_endpoint(registry: str) -> str:
    """The API host of a registry name (Docker Hub's API lives on registry-1.docker.io)."""
    return "registry-1.docker.io" if registry in ("docker.io", "index.docker.io") else registry


class RegistryClient:
    """Speaks the registry API for one job; safe to share between threads."""

    def __init__(self, credentials: Callable[[str], Credentials | None] = lambda host: None,
                 *, attempts: int = 4, backoff: float = 0.2, timeout: float = 60.0,
                 plain_http: frozenset[str] | set[str] = frozenset(),
                 on_retry: Callable[[str], None] | None = None) -> None:
        self._credentials = credentials
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = timeout
        self._plain_http = set(plain_http)
        self._on_retry = on_retry
        self._local = threading.local()
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._creds: dict[str, Credentials | None] = {}
        self._challenges: dict[str, tuple[str, dict[str, str]]] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self.round_trips = 0

    # -- manifests -------------------------------------------------------------------------

    def get_manifest(self, repo: Repo, reference: str) -> Manifest | None:
        """The manifest under a tag or digest, or None when there is none."""
        response = self._call(repo, "GET", f"manifests/{reference}", accept=(200, 404),
                              headers={"Accept": ACCEPT})
        if response.status == 404:
            return None
        media_type = response.header("Content-Type").split(";")[0].strip()
        if not media_type or media_type == "application/json":
            media_type = json.loads(response.body).get("mediaType", media_type)
        digest = response.header("Docker-Content-Digest")
        if reference.startswith("sha256:") or not digest:
            digest = digest_of(response.body)  # verify what was asked for by digest
        if reference.startswith("sha256:") and digest != reference:
            raise ExternalError(f"registry {repo.registry} served {repo.name}@{reference} with "
                                f"content of digest {digest}")
        return Manifest(response.body, media_type, digest)

    def head_manifest(self, repo: Repo, reference: str) -> str | None:
        """The digest a tag points at, or None when the tag does not exist."""
        response = self._call(repo, "HEAD", f"manifests/{reference}", accept=(200, 404),
                              headers={"Accept": ACCEPT})
        if response.status == 404:
            return None
        digest = response.header("Docker-Content-Digest")
        if digest:
            return digest
        manifest = self.get_manifest(repo, reference)
        return manifest.digest if manifest else None

    def put_manifest(self, repo: Repo, reference: str, manifest: Manifest) -> str:
        """Store the manifest's bytes under a tag (or its digest); return the digest."""
        response = self._call(repo, "PUT", f"manifests/{reference}", accept=(200, 201),
                              headers={"Content-Type": manifest.media_type}, body=manifest.body)
        digest = response.header("Docker-Content-Digest") or manifest.digest
        if digest != manifest.digest:
            raise ExternalError(f"registry {repo.registry} stored {repo.name}:{reference} as "
                                f"{digest}, not {manifest.digest}")
        return digest

    def tags(self, repo: Repo) -> list[str]:
        """Every tag of the repository (all pages); empty when the repository does not exist."""
        found: list[str] = []
        path: str | None = "tags/list?n=1000"
        while path:
            response = self._call(repo, "GET", path, accept=(200, 404))
            if response.status == 404:
                return found
            found += json.loads(response.body).get("tags") or []
            link = response.header("Link")
            match = re.match(r'<([^>]+)>\s*;\s*rel="?next"?', link)
            path = None
            if match:
                nxt = urlsplit(match.group(1))
                prefix = f"/v2/{repo.name}/"
                path = (nxt.path[len(prefix):] if nxt.path.startswith(prefix) else nxt.path)
                path += f"?{nxt.query}" if nxt.query else ""
        return found

    # -- blobs -----------------------------------------------------------------------------

    def blob_exists(self, repo: Repo, digest: str) -> bool:
        response = self._call(repo, "HEAD", f"blobs/{digest}", accept=(200, 404))
        return response.status == 200

    def mount_blob(self, repo: Repo, digest: str, from_repo: str) -> bool:
        """Mount a blob from another repository of the same registry; False if it declined."""
        query = urlencode({"mount": digest, "from": from_repo})
        response = self._call(repo, "POST", f"blobs/uploads/?{query}", accept=(201, 202),
                              extra_scopes=(f"repository:{from_repo}:pull",))
        if response.status == 201:
            return True
        location = response.header("Location")  # it opened an upload instead: give it back
        if location:
            with contextlib.suppress(ExternalError):
                self._call(repo, "DELETE", location, accept=(200, 202, 204, 404))
        return False

    def copy_blob(self, source: Repo, target: Repo, descriptor: dict[str, Any]) -> None:
        """Stream one blob from a repository to another (any registries), without a disk copy."""
        digest, size = descriptor["digest"], descriptor.get("size")

        def attempt() -> None:
            start = self._send(target, "POST", "blobs/uploads/", accept=(202,))
            location = start.header("Location")
            if not location:
                raise ExternalError(f"registry {target.registry} gave no upload location")
            with self._stream(source, f"blobs/{digest}") as stream:
                length = size if size is not None else int(stream.header("Content-Length"))
                sep = "&" if "?" in location else "?"
                self._send(target, "PUT", f"{location}{sep}{urlencode({'digest': digest})}",
                           accept=(201,), body=stream.raw,
                           headers={"Content-Type": "application/octet-stream",
                                    "Content-Length": str(length)})

        self._retrying(target.registry, f"copy blob {digest}", attempt)

    # -- the HTTP layer ------------------------------------------------------------------

    def _call(self, repo: Repo, method: str, path: str, *, accept: tuple[int, ...],
              headers: dict[str, str] | None = None, body: bytes | None = None,
              extra_scopes: tuple[str, ...] = ()) -> Response:
        """One API request, retried as a whole when it fails transiently."""
        return self._retrying(repo.registry, f"{method} {repo.name}/{path.split('?')[0]}",
                              lambda: self._send(repo, method, path, accept=accept,
                                                 headers=headers, body=body,
                                                 extra_scopes=extra_scopes))

    def _retrying(self, registry: str, what: str, fn: Callable[[], Any]) -> Any:
        def note(error: BaseException) -> None:
            if self._on_retry:
                self._on_retry(f"registry {registry}: {what}: {error}; retrying")

        try:
            return call_with_retries(fn, attempts=self.attempts, multiplier=self.backoff,
                                     max_wait=8, jitter=self.backoff, on_retry=note)
        except Transient as e:
            state = "is unreachable" if "unreachable" in str(e) else "failed"
            raise ExternalError(f"registry {registry} {state} after {self.attempts} attempts "
                                f"({what}): {e}") from e

    def _send(self, repo: Repo, method: str, path: str, *, accept: tuple[int, ...],
              headers: dict[str, str] | None = None, body: Any = None,
              extra_scopes: tuple[str, ...] = (), stream: bool = False) -> Response:
        """Send with auth: answer a 401 challenge once, then judge the status."""
        scopes = (repo.scope, *extra_scopes)
        url = self._url(repo, path)
        sent_auth = self._authorization(repo.registry, scopes)
        for _ in range(3):
            all_headers = dict(headers or {})
            if sent_auth:
                all_headers["Authorization"] = sent_auth
            response = self._exchange(method, url, all_headers, body, stream=stream)
            if response.status != 401:
                break
            if response.raw:
                response.raw.close()
            if body is not None and not isinstance(body, bytes):
                # a stream cannot be sent twice: learn the auth, then fail transiently
                self._answer_challenge(repo, response, scopes, sent_auth)
                raise Transient("authentication needed mid-stream")
            sent_auth = self._answer_challenge(repo, response, scopes, sent_auth)
        if response.status in accept:
            return response
        if response.raw:
            response.raw.close()
        if response.status >= 500 or response.status == 429:
            raise Transient(f"HTTP {response.status} {_error_text(response)}".strip())
        if response.status == 403:
            raise ExternalError(f"registry {repo.registry} denied {method} {repo.name}: "
                                f"{_error_text(response)}")
        raise ExternalError(f"registry {repo.registry}: {method} {repo.name}/"
                            f"{path.split('?')[0]} answered HTTP {response.status} "
                            f"{_error_text(response)}".rstrip())

    def _url(self, repo: Repo, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        base = f"{self._scheme(repo.registry)}://{registry_endpoint(repo.registry)}"
        if path.startswith("/"):
            return base + path
        return f"{base}/v2/{repo.name}/{path}"

    def _scheme(self, host: str) -> str:
        plain = host in self._plain_http or host.startswith(_LOOPBACK)
        return "http" if plain else "https"

    def _exchange(self, method: str, url: str, headers: dict[str, str], body: Any,
                  stream: bool = False) -> Response:
        """One HTTP exchange (following redirects for reads); connection trouble is transient."""
        for _ in range(5):
            parts = urlsplit(url)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn = self._connection(parts.scheme, parts.netloc, fresh=stream)
            try:
                conn.request(method, target, body=body, headers=headers)
                raw = conn.getresponse()
                self.round_trips += 1
                if stream and raw.status == 200:
                    return Response(raw.status, raw.headers, b"", raw)
                data = raw.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self._forget(parts.scheme, parts.netloc)
                if isinstance(e, ConnectionRefusedError | TimeoutError | socket.gaierror):
                    raise Transient(f"unreachable: {type(e).__name__}: {e}") from e
                raise Transient(f"{type(e).__name__}: {e}") from e
            if raw.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
                new_url = urljoin(url, raw.headers.get("Location", ""))
                if urlsplit(new_url).netloc != parts.netloc:
                    headers = {k: v for k, v in headers.items() if k != "Authorization"}
                url = new_url
                continue
            if raw.will_close:
                self._forget(parts.scheme, parts.netloc)
            return Response(raw.status, raw.headers, data)
        raise ExternalError(f"too many redirects from {url}")

    def _connection(self, scheme: str, netloc: str, fresh: bool = False):
        if fresh:
            return self._new_connection(scheme, netloc)
        conns = self._local.__dict__.setdefault("conns", {})
        conn = conns.get((scheme, netloc))
        if conn is None:
            conn = conns[(scheme, netloc)] = self._new_connection(scheme, netloc)
        return conn

    def _new_connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=self.timeout, blocksize=_CHUNK)
        return http.client.HTTPConnection(netloc, timeout=self.timeout, blocksize=_CHUNK)

    def _forget(self, scheme: str, netloc: str) -> None:
        conn = self._local.__dict__.get("conns", {}).pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    @contextlib.contextmanager
    def _stream(self, repo: Repo, path: str) -> Iterator[Response]:
        """A GET whose body is read by the caller (a blob copied without touching disk)."""
        response = self._send(repo, "GET", path, accept=(200,), stream=True)
        try:
            yield response
        finally:
            if response.raw:
                response.raw.close()

    def close(self) -> None:
        """Close this thread's connections."""
        for conn in self._local.__dict__.pop("conns", {}).values():
            conn.close()

    # -- auth ------------------------------------------------------------------------------

    def _creds_for(self, registry: str) -> Credentials | None:
        with self._lock:
            if registry not in self._creds:
                self._creds[registry] = self._credentials(registry)
            return self._creds[registry]

    def _authorization(self, registry: str, scopes: tuple[str, ...]) -> str | None:
        """The Authorization header to send first: what the last challenge taught us."""
        creds = self._creds_for(registry)
        scheme, params = self._challenges.get(registry, ("", {}))
        if scheme == "bearer":
            return f"Bearer {self._token(registry, params, scopes, creds)}"
        if creds and creds.username and creds.password and scheme in ("", "basic"):
            return _basic(creds)
        return None

    def _answer_challenge(self, repo: Repo, response: Response, scopes: tuple[str, ...],
                          sent: str | None) -> str:
        registry = repo.registry
        challenge = response.header("WWW-Authenticate")
        scheme = challenge.split(" ", 1)[0].lower()
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        creds = self._creds_for(registry)
        if scheme == "basic":
            with self._lock:
                self._challenges[registry] = ("basic", params)
            if not (creds and creds.username and creds.password):
                raise ExternalError(_needs_credentials(registry))
            if sent and sent.startswith("Basic "):
                raise ExternalError(_refused(registry, creds))
            return _basic(creds)
        if scheme == "bearer" and params.get("realm"):
            with self._lock:
                self._challenges[registry] = ("bearer", params)
            if sent and sent.startswith("Bearer "):
                if params.get("error") == "insufficient_scope" or not creds:
                    raise ExternalError(
                        f"registry {registry} denied {' '.join(scopes)}"
                        + ("" if creds else f"; {_needs_credentials(registry)}"))
                raise ExternalError(_refused(registry, creds))
            return f"Bearer {self._token(registry, params, scopes, creds, fresh=True)}"
        raise ExternalError(f"registry {registry} asked for unsupported auth: "
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
            response = self._exchange("POST", realm, {
                "Content-Type": "application/x-www-form-urlencoded"}, form.encode())
        else:
            headers = {"Authorization": _basic(creds)} if creds and creds.username else {}
            sep = "&" if "?" in realm else "?"
            response = self._exchange("GET", f"{realm}{sep}{urlencode(query)}", headers, None)
        if response.status in (401, 403):
            raise ExternalError(_refused(registry, creds) if creds
                                else _needs_credentials(registry))
        if response.status >= 500 or response.status == 429:
            raise Transient(f"token service {realm}: HTTP {response.status}")
        if response.status != 200:
            raise ExternalError(f"token service {realm} for registry {registry} answered "
                                f"HTTP {response.status}")
        try:
            answer = json.loads(response.body)
            token = answer.get("token") or answer["access_token"]
        except (ValueError, KeyError) as e:
            raise ExternalError(f"token service {realm} for registry {registry} gave no token"
                                ) from e
        lifetime = float(answer.get("expires_in") or 60)
        with self._lock:
            self._tokens[(registry, " ".join(scopes))] = (
                token, time.monotonic() + max(lifetime - 10, lifetime / 2))
        return token


def _basic(creds: Credentials) -> str:
    pair = f"{creds.username}:{creds.password}".encode()
    return "Basic " + b64encode(pair).decode()


def _needs_credentials(registry: str) -> str:
    return (f"registry {registry} requires credentials and none were found for it "
            "(set CI_REGISTRY_USER/CI_REGISTRY_PASSWORD for CI_REGISTRY, DOCKER_AUTH_CONFIG, "
            "or docker login)")


def _refused(registry: str, creds: Credentials | None) -> str:
    who = f" for user {creds.username!r}" if creds and creds.username else ""
    source = f" (from {creds.source})" if creds and creds.source else ""
    return f"registry {registry} refused the credentials{who}{source}"


def _error_text(response: Response) -> str:
    """The registry's own error message (`{"errors": [{"code", "message"}]}`), shortened."""
    try:
        errors = json.loads(response.body).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)[:300]
    except (ValueError, AttributeError):
        return response.body[:200].decode("utf-8", "replace").strip()

