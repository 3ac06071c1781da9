"""Registry credentials for a host, found where CI jobs and `docker login` keep them.

Highest first: the CI system's user and password for its own registry (`--registry-user` /
`--registry-password` for `--registry`, i.e. CI_REGISTRY_USER / CI_REGISTRY_PASSWORD for
CI_REGISTRY); `DOCKER_AUTH_CONFIG` (the JSON GitLab runners take); the Docker config file
(`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`) with its `auths`, `credHelpers`
and `credsStore`. Values come in as arguments; nothing here reads the environment.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from steps.runtime.errors import ExternalError, UsageError

if TYPE_CHECKING:
    from steps.runtime.log import Log

_DOCKER_HUB_HOSTS = frozenset({"index.docker.io", "docker.io", "registry-1.docker.io"})


class Credentials(NamedTuple):
    """A user and password, or an identity (refresh) token, for one registry."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    source: str = ""

    def secrets(self) -> list[str]:
        """What a log must never show."""
        return [s for s in (self.password, self.identity_token) if s]

    def engine_auth(self, server: str) -> dict[str, str]:
        """What the engine takes for `server` (the X-Registry-Auth JSON: pulls, pushes, swarm
        services)."""
        if self.identity_token:
            return {"identitytoken": self.identity_token, "serveraddress": server}
        return {"username": self.username, "password": self.password, "serveraddress": server}


def host_key(server: str) -> str:
    """`https://reg.example.com/v1/` -> `reg.example.com`; Docker Hub's names -> `docker.io`."""
    host = server.strip()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix):]
    host = host.split("/", 1)[0].lower()
    return "docker.io" if host in _DOCKER_HUB_HOSTS else host


class CredentialStore(NamedTuple):
    """Where to look for credentials; `for_host` answers for one registry host."""

    registry: str | None = None
    registry_user: str | None = None
    registry_password: str | None = None
    docker_auth_config: str | None = None
    docker_config: str | None = None
    helper_path: str | None = None  # PATH for docker-credential-* helpers (None: the process's)

    def for_host(self, host: str) -> Credentials | None:
        """Credentials for `host` (as in an image reference), or None for anonymous access."""
        key = host_key(host)
        if (self.registry and host_key(self.registry) == key and self.registry_user
                and self.registry_password):
            return Credentials(self.registry_user, self.registry_password,
                               source="--registry-user/--registry-password")
        if self.docker_auth_config:
            config = _parse_config(self.docker_auth_config, "DOCKER_AUTH_CONFIG")
            found = self._from_config(config, key, "DOCKER_AUTH_CONFIG")
            if found:
                return found
        path = self.config_path()
        if path and path.is_file():
            config = _parse_config(path.read_text(encoding="utf-8"), str(path))
            return self._from_config(config, key, str(path))
        return None

    def hosts(self) -> list[str]:
        """Every registry host these places hold credentials for (a build's base images may
        come from any of them)."""
        found = [host_key(self.registry)] if (self.registry and self.registry_user
                                              and self.registry_password) else []
        configs = []
        if self.docker_auth_config:
            configs.append(_parse_config(self.docker_auth_config, "DOCKER_AUTH_CONFIG"))
        path = self.config_path()
        if path and path.is_file():
            configs.append(_parse_config(path.read_text(encoding="utf-8"), str(path)))
        for config in configs:
            for table in ("auths", "credHelpers"):
                found += [host_key(server) for server in config.get(table) or {}]
        return list(dict.fromkeys(found))

    def config_path(self) -> Path | None:
        """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (as the Docker CLI does)."""
        if self.docker_config:
            return Path(self.docker_config) / "config.json"
        try:
            return Path.home() / ".docker" / "config.json"
        except RuntimeError:  # no home directory
            return None

    def _from_config(self, config: dict, key: str, where: str) -> Credentials | None:
        helper = _match(config.get("credHelpers") or {}, key)
        if helper:
            return self._from_helper(helper, key, where)
        entry = _match(config.get("auths") or {}, key)
        if entry is not None:
            found = _from_auth_entry(entry, key, where)
            if found:
                return found
        if config.get("credsStore"):
            return self._from_helper(config["credsStore"], key, where)
        return None

    def _from_helper(self, name: str, key: str, where: str) -> Credentials | None:
        import shutil
        import subprocess

        program = shutil.which(f"docker-credential-{name}", path=self.helper_path)
        if program is None:
            return None  # as a runner with a stale credsStore: go on anonymously
        server = "https://index.docker.io/v1/" if key == "docker.io" else key
        try:
            done = subprocess.run([program, "get"], input=server, text=True,
                                  capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ExternalError(f"credential helper docker-credential-{name} ({where}) "
                                f"failed for {key}: {type(e).__name__}") from e
        if done.returncode != 0:
            if "credentials not found" in (done.stdout + done.stderr).lower():
                return None
            raise ExternalError(f"credential helper docker-credential-{name} ({where}) failed "
                                f"for {key}: exit {done.returncode}")
        try:
            answer = json.loads(done.stdout)
            username, secret = answer.get("Username", ""), answer["Secret"]
        except (ValueError, KeyError, AttributeError) as e:
            raise ExternalError(f"credential helper docker-credential-{name} gave no "
                                f"Username/Secret JSON for {key}") from e
        if username == "<token>":
            return Credentials(identity_token=secret, source=f"docker-credential-{name}")
        return Credentials(username, secret, source=f"docker-credential-{name}")


def _parse_config(text: str, where: str) -> dict:
    try:
        config = json.loads(text)
    except ValueError as e:
        raise UsageError(f"{where} is not valid JSON ({e.msg} at line {e.lineno}); expected "
                         '{"auths": {"registry.example.com": {"auth": "<base64 user:password>"}}}'
                         ) from None
    if not isinstance(config, dict):
        raise UsageError(f"{where} must hold a JSON object with an \"auths\" key")
    return config


def _match(table: dict, key: str):
    for server, value in table.items():
        if host_key(server) == key:
            return value
    return None


def _from_auth_entry(entry: dict, key: str, where: str) -> Credentials | None:
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: auths entry for {key} must be an object")
    if entry.get("identitytoken"):
        return Credentials(identity_token=entry["identitytoken"], source=where)
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise UsageError(f"{where}: auths entry for {key}: \"auth\" must be base64 of "
                             "user:password")
        return Credentials(user, password, source=where)
    if entry.get("username") and entry.get("password"):
        return Credentials(entry["username"], entry["password"], source=where)
    return None


def needs_credentials(registry: str) -> str:
    """The error when a registry wants credentials and the chain has none for it."""
    return (f"registry {registry} requires credentials and none were found for it "
            "(set CI_REGISTRY_USER/CI_REGISTRY_PASSWORD for CI_REGISTRY, DOCKER_AUTH_CONFIG, "
            "or docker login)")


def refused(registry: str, creds: Credentials | None) -> str:
    """The error when a registry refused the credentials the chain found: which, and from
    where."""
    who = f" for user {creds.username!r}" if creds and creds.username else ""
    source = f" (from {creds.source})" if creds and creds.source else ""
    return f"registry {registry} refused the credentials{who}{source}"


def find_credentials(store: CredentialStore, host: str, log: Log) -> Credentials | None:
    """Credentials for `host`; their secrets join the log's masker before anything can print
    them."""
    found = store.for_host(host)
    if found:
        log.masker.add(*found.secrets())
        log.masker.add_basic_auth(found.username, found.password)
        log.debug(f"credentials for {host} from {found.source}")
    return found
