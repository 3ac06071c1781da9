"""RegistryClient: manifests, tags and blobs of the registry API, each request retried as a
whole when it fails transiently."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

from steps.images.credentials import Credentials
from steps.registry.auth import Auth
from steps.registry.errors import RegistryError
from steps.registry.manifest import ACCEPT, Manifest, Repo, digest_of
from steps.registry.transport import Response, Transport
from steps.runtime.retry import call_with_retries


class RegistryClient:
    """Speaks the registry API for one job; safe to share between threads.

    `credentials` answers for a registry host (None: anonymous). Transient failures are retried
    `attempts` times in all with backoff; after that, or when credentials are refused, a
    RegistryError names the registry.
    """

    def __init__(self, credentials: Callable[[str], Credentials | None] = lambda host: None,
                 *, attempts: int = 4, backoff: float = 0.2, timeout: float = 60.0,
                 plain_http: frozenset[str] | set[str] = frozenset(),
                 on_retry: Callable[[str], None] | None = None,
                 transport: Transport | None = None) -> None:
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._on_retry = on_retry
        self.transport = transport or Transport(timeout, plain_http)
        self._auth = Auth(credentials, self.transport)

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
            raise RegistryError(f"registry {repo.registry} served {repo.name}@{reference} with "
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
            raise RegistryError(f"registry {repo.registry} stored {repo.name}:{reference} as "
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

    def get_blob(self, repo: Repo, digest: str) -> bytes:
        """A small blob (an image's config), checked against its digest."""
        response = self._call(repo, "GET", f"blobs/{digest}", accept=(200,))
        if digest_of(response.body) != digest:
            raise RegistryError(f"registry {repo.registry} served {repo.name} blob {digest} "
                                f"with content of digest {digest_of(response.body)}")
        return response.body

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
            with contextlib.suppress(RegistryError):
                self._call(repo, "DELETE", location, accept=(200, 202, 204, 404))
        return False

    def copy_blob(self, source: Repo, target: Repo, descriptor: dict[str, Any]) -> None:
        """Stream one blob from a repository to another (any registries), without a disk copy."""
        digest, size = descriptor["digest"], descriptor.get("size")

        def attempt() -> None:
            start = self._send(target, "POST", "blobs/uploads/", accept=(202,))
            location = start.header("Location")
            if not location:
                raise RegistryError(f"registry {target.registry} gave no upload location")
            with self._stream(source, f"blobs/{digest}") as stream:
                length = size if size is not None else int(stream.header("Content-Length"))
                sep = "&" if "?" in location else "?"
                self._send(target, "PUT", f"{location}{sep}{urlencode({'digest': digest})}",
                           accept=(201,), body=stream.raw,
                           headers={"Content-Type": "application/octet-stream",
                                    "Content-Length": str(length)})

        self._retrying(target.registry, f"copy blob {digest}", attempt)

    def close(self) -> None:
        """Close this thread's connections."""
        self.transport.close()

    # -- requests --------------------------------------------------------------------------

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
        except RegistryError as e:
            if not e.transient:
                raise
            state = "is unreachable" if "unreachable" in str(e) else "failed"
            raise RegistryError(f"registry {registry} {state} after {self.attempts} attempts "
                                f"({what}): {e}", transient=True) from e

    def _send(self, repo: Repo, method: str, path: str, *, accept: tuple[int, ...],
              headers: dict[str, str] | None = None, body: Any = None,
              extra_scopes: tuple[str, ...] = (), stream: bool = False) -> Response:
        """Send with auth: answer a 401 challenge once, then judge the status."""
        scopes = (repo.scope, *extra_scopes)
        url = self.transport.url(repo.registry, repo.name, path)
        sent_auth = self._auth.header(repo.registry, scopes)
        for _ in range(3):
            all_headers = dict(headers or {})
            if sent_auth:
                all_headers["Authorization"] = sent_auth
            response = self.transport.exchange(method, url, all_headers, body, stream=stream)
            if response.status != 401:
                break
            if response.raw:
                response.raw.close()
            challenge = response.header("WWW-Authenticate")
            if body is not None and not isinstance(body, bytes):
                # a stream cannot be sent twice: learn the auth, then fail transiently
                self._auth.answer(repo.registry, challenge, scopes, sent_auth)
                raise RegistryError("authentication needed mid-stream", transient=True)
            sent_auth = self._auth.answer(repo.registry, challenge, scopes, sent_auth)
        if response.status in accept:
            return response
        if response.raw:
            response.raw.close()
        if response.status >= 500 or response.status == 429:
            raise RegistryError(f"HTTP {response.status} {_error_text(response)}".strip(),
                                transient=True)
        if response.status == 403:
            raise RegistryError(f"registry {repo.registry} denied {method} {repo.name}: "
                                f"{_error_text(response)}", refused=True)
        raise RegistryError(f"registry {repo.registry}: {method} {repo.name}/"
                            f"{path.split('?')[0]} answered HTTP {response.status} "
                            f"{_error_text(response)}".rstrip())

    @contextlib.contextmanager
    def _stream(self, repo: Repo, path: str) -> Iterator[Response]:
        """A GET whose body is read by the caller (a blob copied without touching disk)."""
        response = self._send(repo, "GET", path, accept=(200,), stream=True)
        try:
            yield response
        finally:
            if response.raw:
                response.raw.close()


def _error_text(response: Response) -> str:
    """The registry's own error message (`{"errors": [{"code", "message"}]}`), shortened."""
    try:
        errors = json.loads(response.body).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)[:300]
    except (ValueError, AttributeError):
        return response.body[:200].decode("utf-8", "replace").strip()
