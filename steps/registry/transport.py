"""HTTP exchanges with registries on the standard library's http.client: one kept-alive
connection per host and thread, redirects followed for reads, connection trouble transient."""

from __future__ import annotations

import http.client
import socket
import threading
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

from steps.registry.errors import RegistryError

_LOOPBACK = ("localhost", "127.", "[::1]")
_CHUNK = 1 << 20


class Response(NamedTuple):
    """An answer from the registry; `raw` is the open stream when one was asked for."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    raw: http.client.HTTPResponse | None = None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


def registry_endpoint(registry: str) -> str:
    """The API host of a registry name (Docker Hub's API lives on registry-1.docker.io)."""
    return "registry-1.docker.io" if registry in ("docker.io", "index.docker.io") else registry


class Transport:
    """Sends requests to registries; safe to share between threads. Tests may subclass it to
    watch or shape the exchanges."""

    def __init__(self, timeout: float = 60.0,
                 plain_http: frozenset[str] | set[str] = frozenset()) -> None:
        self.timeout = timeout
        self._plain_http = set(plain_http)
        self._local = threading.local()
        self.round_trips = 0

    def url(self, registry: str, name: str, path: str) -> str:
        """The URL of an API path of repository `name` (absolute and /v2 paths kept)."""
        if path.startswith(("http://", "https://")):
            return path
        base = f"{self._scheme(registry)}://{registry_endpoint(registry)}"
        if path.startswith("/"):
            return base + path
        return f"{base}/v2/{name}/{path}"

    def _scheme(self, host: str) -> str:
        plain = host in self._plain_http or host.startswith(_LOOPBACK)
        return "http" if plain else "https"

    def exchange(self, method: str, url: str, headers: dict[str, str], body: Any,
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
                    raise RegistryError(f"unreachable: {type(e).__name__}: {e}",
                                        transient=True) from e
                raise RegistryError(f"{type(e).__name__}: {e}", transient=True) from e
            if raw.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
                new_url = urljoin(url, raw.headers.get("Location", ""))
                if urlsplit(new_url).netloc != parts.netloc:
                    headers = {k: v for k, v in headers.items() if k != "Authorization"}
                url = new_url
                continue
            if raw.will_close:
                self._forget(parts.scheme, parts.netloc)
            return Response(raw.status, raw.headers, data)
        raise RegistryError(f"too many redirects from {url}")

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

    def close(self) -> None:
        """Close this thread's connections."""
        for conn in self._local.__dict__.pop("conns", {}).values():
            conn.close()
