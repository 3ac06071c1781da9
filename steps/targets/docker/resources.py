"""Engine objects around a docker-target release: images, networks, volumes, config and secret
files, and the release records (never-started containers carrying the record as a label)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from typing import Any

from steps.images.engine import Lookup
from steps.images.pull import ensure_image
from steps.release import Release
from steps.runtime.errors import ExternalError, Refused
from steps.runtime.log import Log
from steps.targets import (
    LABEL_ENVIRONMENT,
    LABEL_PROJECT,
    LABEL_RECORD,
    LABEL_RELEASE,
    LABEL_ROLE,
    label_filter,
    name_prefix,
)
from steps.targets.docker import spec as container_spec

KEEP_RECORDS = 50
STALE_LOCK_MARGIN = 600.0


def _epoch(created: str) -> float:
    """The engine's RFC 3339 time (nanoseconds) as a Unix time."""
    from datetime import datetime

    head, _, frac = created.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0"))


class EngineResources:
    """The engine calls the docker target makes besides running containers."""

    def __init__(self, client: Any, credentials: Lookup) -> None:
        import docker.errors

        self.client = client
        self.credentials = credentials
        self.api = client.api
        self._errors = docker.errors

    def containers(self, project: str, env: str, role: str | None) -> list[dict[str, Any]]:
        """The environment's containers with this role (every role when None)."""
        filters = label_filter({LABEL_PROJECT: project, LABEL_ENVIRONMENT: env, LABEL_ROLE: role})
        try:
            return self.api.containers(all=True, filters=filters)
        except self._errors.APIError as e:
            raise ExternalError(f"cannot list containers: {e}") from e

    def image(self, ref: str, log: Log) -> tuple[str, str]:
        """The image id to run and the digest reference to record (pulled if need be)."""
        return ensure_image(self.client, ref, log, self.credentials)

    def image_exists(self, image_id: str) -> bool:
        try:
            self.api.inspect_image(image_id)
            return True
        except self._errors.NotFound:
            return False

    def networks(self, project: str, env: str, model: dict[str, Any], log: Log) -> dict[str, str]:
        declared = {"default": {}, **model.get("networks", {})}
        out = {}
        for name, spec in declared.items():
            engine_name = container_spec.resource_name(project, env, name, spec or {})
            out[name] = engine_name
            if self.api.networks(names=[engine_name]):
                continue
            if (spec or {}).get("external"):
                raise Refused(f"external network {engine_name} does not exist; create it first")
            log.command(["docker", "network", "create", engine_name])
            self.api.create_network(
                engine_name, driver=spec.get("driver"), options=spec.get("driver_opts"),
                internal=bool(spec.get("internal")), attachable=spec.get("attachable"),
                labels={**spec.get("labels", {}), **container_spec.labels(project, env, "network")})
        return out

    def volumes(self, project: str, env: str, model: dict[str, Any], log: Log) -> dict[str, str]:
        out = {}
        for name, spec in model.get("volumes", {}).items():
            spec = spec or {}
            engine_name = container_spec.resource_name(project, env, name, spec)
            out[name] = engine_name
            try:
                self.api.inspect_volume(engine_name)
                continue
            except self._errors.NotFound:
                if spec.get("external"):
                    raise Refused(f"external volume {engine_name} does not exist; create it "
                                  "first") from None
            log.command(["docker", "volume", "create", engine_name])
            self.api.create_volume(engine_name, driver=spec.get("driver"),
                                   driver_opts=spec.get("driver_opts"),
                                   labels={**spec.get("labels", {}),
                                           **container_spec.labels(project, env, "volume")})
        return out

    def files(self, project: str, env: str, model: dict[str, Any], hashes: dict[str, str],
               contents: dict[tuple[str, str], bytes], helper_image: str,
               log: Log) -> dict[tuple[str, str, str], str]:
        """Config and secret files, each in a volume named by its content; mounted read-only."""
        out: dict[tuple[str, str, str], str] = {}
        for spec in model["services"].values():
            for kind in ("configs", "secrets"):
                for ref in spec[kind]:
                    name = ref["source"]
                    volume = container_spec.file_volume(project, env, kind, name,
                                                        hashes[f"{kind[:-1]}:{name}"], ref)
                    key = (kind, name, ref["target"])
                    if key in out:
                        continue
                    try:
                        out[key] = self.api.inspect_volume(volume)["Mountpoint"] + "/content"
                        continue
                    except self._errors.NotFound:
                        if (kind, name) not in contents:
                            raise Refused(f"the {kind[:-1]} volume {volume} of this release is "
                                          "gone; deploy from the repository instead") from None
                    self._write_file(volume, contents[(kind, name)], ref, helper_image,
                                     container_spec.labels(project, env, kind[:-1]))
                    out[key] = self.api.inspect_volume(volume)["Mountpoint"] + "/content"
        return out

    def _write_file(self, volume: str, data: bytes, ref: dict[str, Any], image: str,
                    labels: dict[str, str]) -> None:
        self.api.create_volume(volume, labels=labels)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("content")
            info.size = len(data)
            info.mode = ref.get("mode") if ref.get("mode") is not None else 0o444
            info.uid = int(ref.get("uid") or 0)
            info.gid = int(ref.get("gid") or 0)
            tar.addfile(info, io.BytesIO(data))
        helper = self.api.create_container(
            image, entrypoint=["/docker-cd-helper"], network_disabled=True,
            labels={**labels, LABEL_ROLE: "helper"},
            host_config=self.api.create_host_config(
                mounts=[{"Type": "volume", "Source": volume, "Target": "/f"}]))
        try:
            self.api.put_archive(helper["Id"], "/f", buf.getvalue())
        finally:
            self.api.remove_container(helper["Id"], force=True)

    def secret_environment(self, project: str, env: str, values: dict[str, dict[str, str]],
                           image: str) -> dict[str, str]:
        """Store each service's secret environment in a volume named by its content (readable
        by root only); service -> volume. Release records name the volume, never the values."""
        out = {}
        for service, entries in sorted(values.items()):
            data = json.dumps(entries, sort_keys=True).encode()
            ref = {"mode": 0o400}
            volume = container_spec.file_volume(project, env, "envs", service,
                                                "sha256:" + hashlib.sha256(data).hexdigest(), ref)
            try:
                self.api.inspect_volume(volume)
            except self._errors.NotFound:
                self._write_file(volume, data, ref, image,
                                 container_spec.labels(project, env, "secret"))
            out[service] = volume
        return out

    def read_secret_environment(self, volumes: dict[str, str],
                                image: str) -> dict[str, dict[str, str]]:
        """The secret environment of each service, read back from its volume (a rollback)."""
        out = {}
        for service, volume in volumes.items():
            try:
                self.api.inspect_volume(volume)
            except self._errors.NotFound:
                raise Refused(f"the secret environment of {service} in this release (volume "
                              f"{volume}) is gone; deploy from the repository instead") from None
            helper = self.api.create_container(
                image, entrypoint=["/docker-cd-helper"], network_disabled=True,
                labels={LABEL_ROLE: "helper"}, host_config=self.api.create_host_config(
                    mounts=[{"Type": "volume", "Source": volume, "Target": "/f"}]))
            try:
                stream, _ = self.api.get_archive(helper["Id"], "/f/content")
                with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                    member = tar.extractfile("content")
                    out[service] = json.loads(member.read() if member else b"{}")
            finally:
                self.api.remove_container(helper["Id"], force=True)
        return out

    def record(self, release: Release, image: str) -> None:
        """Keep the release on the engine: a never-started container carrying it as a label."""
        labels = container_spec.labels(
            release.project, release.environment, "release",
            **{LABEL_RELEASE: release.id, LABEL_RECORD: release.to_json()})
        name = f"{name_prefix(release.project, release.environment)}-release-{release.id}"
        try:
            self.api.create_container(image, name=name.lower(), labels=labels,
                                      entrypoint=["/docker-cd-release-record"],
                                      network_disabled=True)
        except self._errors.APIError as e:
            raise ExternalError(f"cannot record release {release.id}: {e}") from e
        records = sorted(self.containers(release.project, release.environment, "release"),
                         key=lambda c: c["Created"], reverse=True)
        self.remove([c["Id"] for c in records[KEEP_RECORDS:]])


    @contextlib.contextmanager
    def lock(self, release: Release, image: str, timeout: float) -> Iterator[None]:
        """One rollout per environment at a time: a container name is unique on the engine.

        A lock older than the longest a rollout may take (an interrupted job) is taken over.
        """
        name = f"{name_prefix(release.project, release.environment)}-deploy-lock"
        labels = container_spec.labels(release.project, release.environment, "lock",
                                       **{LABEL_RELEASE: release.id})
        for attempt in range(2):
            try:
                created = self.api.create_container(image, name=name, labels=labels,
                                                    entrypoint=["/docker-cd-lock"],
                                                    network_disabled=True)
                break
            except self._errors.APIError as e:
                if e.status_code != 409 or attempt:
                    raise ExternalError(f"cannot take the deploy lock {name}: {e}") from e
                held = self.api.inspect_container(name)
                age = time.time() - _epoch(held["Created"])
                if age < timeout + STALE_LOCK_MARGIN:
                    owner = held["Config"]["Labels"].get(LABEL_RELEASE)
                    raise ExternalError(
                        f"another deploy or rollback of {release.environment} is running "
                        f"(release {owner}, started {age:.0f}s ago); run them one at a time "
                        "(GitLab: resource_group) or retry later") from e
                self.api.remove_container(name, force=True)
        try:
            yield
        finally:
            with contextlib.suppress(self._errors.APIError):
                self.api.remove_container(created["Id"], force=True)

    def remove(self, ids: list[str]) -> None:
        """Remove containers (force); one already gone is fine."""
        for cid in ids:
            try:
                self.api.remove_container(cid, force=True)
            except self._errors.NotFound:
                pass
            except self._errors.APIError as e:
                raise ExternalError(f"cannot remove container {cid[:12]}: {e}") from e
