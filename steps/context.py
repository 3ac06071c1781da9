"""What a command runs with besides its settings: the log, the variables, and the clients of
outside systems, built at the edge the first time a command asks for one.

A test hands a command its own clients instead (a small fake promotion service, a target on a
test engine): `Context(log, environ, process_environ={}, service=FakeService())`. Each client
module is imported only when its client is built, so a command that needs no engine never loads
docker-py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from steps.images.credentials import Credentials, CredentialStore, find_credentials
from steps.runtime.log import Log

if TYPE_CHECKING:
    from steps.registry import RegistryClient
    from steps.service.client import ServiceClient
    from steps.targets import Target

DEFAULT_PLACES = CredentialStore()  # the Docker config file only: for steps with no registry


class Context:
    """The log, the step's variables (`environ`), the environment child processes and the
    engine client start from (`process_environ`: the CLI passes the process's own), and the
    clients, each built once."""

    def __init__(self, log: Log, environ: Mapping[str, str], *,
                 process_environ: Mapping[str, str], engine: Any = None,
                 registry: RegistryClient | None = None, service: ServiceClient | None = None,
                 targets: Mapping[str, Target] | None = None) -> None:
        self.log = log
        self.environ = environ
        self.process_environ = process_environ
        self._engines: dict[str | None, Any] = {None: engine} if engine is not None else {}
        self._registry = registry
        self._service = service
        self._targets = dict(targets or {})
        self._credentials: dict[tuple[CredentialStore, str], Credentials | None] = {}

    def engine(self, store: CredentialStore = DEFAULT_PLACES, host: str | None = None) -> Any:
        """A docker-py client for `host` (None: DOCKER_HOST and its TLS settings, else the
        local socket) that gives the engine registry credentials from `store`, as every other
        registry call gets them; exit 3 when the engine does not answer."""
        from steps.images.engine import docker_client, use_credentials

        if host not in self._engines:
            self._engines[host] = docker_client(host, environment=self.process_environ)
        use_credentials(self._engines[host], lambda registry: self.credentials(store, registry),
                        store.hosts())
        return self._engines[host]

    def credentials(self, store: CredentialStore, host: str) -> Credentials | None:
        """Credentials for a registry host (looked up once); their secrets join the log's
        masker."""
        if (store, host) not in self._credentials:
            self._credentials[(store, host)] = find_credentials(store, host, self.log)
        return self._credentials[(store, host)]

    def registry(self, store: CredentialStore, attempts: int,
                 plain_http: Iterable[str] = ()) -> RegistryClient:
        """A registry client with these credentials; retries are announced in the log."""
        if self._registry is None:
            from steps.registry import RegistryClient

            self._registry = RegistryClient(lambda host: self.credentials(store, host),
                                            attempts=attempts, plain_http=set(plain_http),
                                            on_retry=self.log.warn)
        return self._registry

    def service(self, url: str | None, token: str | None) -> ServiceClient | None:
        """The promotion service's client; None when no service is configured."""
        if self._service is None and url:
            from steps.service.client import ServiceClient

            self._service = ServiceClient(url, token)
        return self._service

    def target(self, name: str, store: CredentialStore = DEFAULT_PLACES) -> Target:
        """The target called `name`, on the engine DOCKER_HOST names, pulling images with the
        credentials in `store` (the default: the Docker config file's)."""
        if name not in self._targets:
            from steps.targets import target_class

            self._targets[name] = target_class(name)(
                self.engine(store), lambda registry: self.credentials(store, registry))
        return self._targets[name]
