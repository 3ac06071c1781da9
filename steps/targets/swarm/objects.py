"""The swarm objects around the services: overlay networks, configs and secrets named by content
hash, and the release records (one swarm config per release, its data the record)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from steps.images.reference import digest_reference, untagged
from steps.release import Release
from steps.runtime.errors import UsageError
from steps.runtime.log import Log
from steps.targets import (
    LABEL_ENVIRONMENT,
    LABEL_PROJECT,
    LABEL_RELEASE,
    LABEL_ROLE,
    label_filter,
    name_prefix,
)
from steps.targets.swarm.stack import (
    Stack,
    release_object_name,
)

if TYPE_CHECKING:
    from steps.template import Template


class SwarmObjects:
    """Creates, finds and removes the swarm objects a stack uses, through the Engine API."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def records(self, project: str, environment: str) -> list[Release]:
        """Every release recorded on this swarm for (project, environment)."""
        found = self.api.configs(filters=label_filter(
            {LABEL_PROJECT: project, LABEL_ENVIRONMENT: environment, LABEL_ROLE: "release"}))
        return [Release.from_json(base64.b64decode(c["Spec"].get("Data", "")).decode())
                for c in found]

    def ensure_networks(self, networks: Mapping[str, dict[str, Any]], log: Log) -> None:
        """Create the stack's overlay networks that do not exist yet."""
        for name, spec in networks.items():
            found = [n for n in self.api.networks(names=[name]) if n["Name"] == name]
            if found:
                if found[0].get("Scope") != "swarm":
                    raise UsageError(f"network {name} exists but is not a swarm (overlay) "
                                     "network; remove it or name another one in the template")
                continue
            if spec["external"]:
                raise UsageError(f"external network {name} does not exist; create it with "
                                 f"`docker network create -d overlay {name}`")
            log.command(["docker", "network", "create", "-d", "overlay", name])
            self.api.create_network(name, driver="overlay", options=spec["options"] or None,
                                    internal=spec["internal"], attachable=spec["attachable"],
                                    labels=spec["labels"], scope="swarm")

    def ensure_objects(self, stack: Stack, template: Template, log: Log) -> None:
        """Create the template's configs/secrets; one named by its hash exists already."""
        for obj in stack.objects:
            if self.find(obj.kind, obj.name):
                continue
            data = (template.configs if obj.kind == "config" else template.secrets)[obj.key]
            log.command(["docker", obj.kind, "create", obj.name, "-"])
            create = self.api.create_config if obj.kind == "config" else self.api.create_secret
            create(obj.name, data, labels=obj.labels)

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        """The config or secret called exactly `name`."""
        listing = self.api.configs if kind == "config" else self.api.secrets
        return next((o for o in listing(filters={"name": name}) if o["Spec"]["Name"] == name),
                    None)

    def resolve_refs(self, desired: dict[str, Any]) -> dict[str, Any]:
        """Fill the config/secret IDs swarm needs beside the names."""
        container = dict(desired["TaskTemplate"]["ContainerSpec"])
        for kind, key in (("config", "Configs"), ("secret", "Secrets")):
            refs = []
            for ref in container.get(key, []):
                name = ref[f"{kind.title()}Name"]
                obj = self.find(kind, name)
                if obj is None:
                    raise UsageError(f"{kind} {name} does not exist on the swarm (declared "
                                     f"external in the template?); create it first")
                refs.append({**ref, f"{kind.title()}ID": obj["ID"]})
            if refs:
                container[key] = refs
        task = {**desired["TaskTemplate"], "ContainerSpec": container}
        return {**desired, "TaskTemplate": task}

    def record(self, release: Release) -> None:
        """Store the release on the swarm: one config object, its data the record."""
        stack = name_prefix(release.project, release.environment)
        name = release_object_name(stack, release.id)
        existing = self.find("config", name)
        if existing:  # a retry of the same release id: keep the first outcome
            return
        self.api.create_config(name, release.to_json().encode(), labels={
            LABEL_PROJECT: release.project, LABEL_ENVIRONMENT: release.environment,
            LABEL_RELEASE: release.id, LABEL_ROLE: "release"})

    def clean_objects(self, labels: Mapping[str, str], keep: set[str], log: Log) -> None:
        """Remove the stack's configs/secrets whose names are not in `keep`."""
        filters = label_filter(labels)
        for kind, listing, remove in (("config", self.api.configs, self.api.remove_config),
                                      ("secret", self.api.secrets, self.api.remove_secret)):
            for obj in listing(filters=filters):
                if obj["Spec"]["Labels"].get(LABEL_ROLE) != kind or obj["Spec"]["Name"] in keep:
                    continue
                log.command(["docker", kind, "rm", obj["Spec"]["Name"]])
                try:
                    remove(obj["ID"])
                except Exception as e:  # still in use by a task shutting down: next deploy
                    log.debug(f"kept {obj['Spec']['Name']}: {e}")

    def images(self, services: Mapping[str, dict[str, Any]],
                known: Mapping[str, str]) -> dict[str, str]:
        """service -> digest reference of what its tasks run."""
        out = dict(known)
        for name, spec in services.items():
            out[name] = self.digest(spec["TaskTemplate"]["ContainerSpec"]["Image"])
        return out

    def digest(self, image: str) -> str:
        """The digest reference of an image (repo@sha256:...), else its local id."""
        repo, at, digest = image.partition("@")
        if at:
            return f"{untagged(repo)}@{digest}"
        try:
            attrs = self.api.inspect_image(image)
        except Exception:
            return image
        return digest_reference(image, attrs.get("RepoDigests") or []) or attrs["Id"]
