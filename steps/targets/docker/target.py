"""The docker target: one Docker engine (DOCKER_HOST), blue-green service by service.

For each service, in dependency order:
  unchanged (same config hash, running)    kept as is
  start-first (default), no fixed host port a new container joins the service's DNS alias next to
                                            the old one; once healthy the old one goes
  start-first, fixed host port              a candidate without ports proves the release healthy
                                            while the old container serves; then the port is
                                            handed over (stop old, start the pre-created new
                                            one: ~0.15 s without service)
  stop-first (deploy.update_config.order)   old stopped (kept), new started (for data that two
                                            processes must not share)
Old containers are kept until every service of the release is healthy, so a failed release is
undone at once and the previous one serves again. Volumes are never deleted. Each release is
recorded as a never-started container labelled with the release (steps.release.Release).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

from steps.images.engine import Lookup
from steps.release import FAILED, SUCCEEDED, Release
from steps.runtime.errors import ExternalError, Refused
from steps.runtime.log import Log
from steps.runtime.masking import REDACTED
from steps.targets import (
    LABEL_CONFIG_HASH,
    LABEL_RECORD,
    LABEL_ROLE,
    LABEL_SERVICE,
    Plan,
    RestorePlan,
    exec_in,
)
from steps.targets.docker import pause
from steps.targets.docker import spec as container_spec
from steps.targets.docker.containers import Containers, Unhealthy, by_service
from steps.targets.docker.resources import EngineResources
from steps.targets.docker.teardown import teardown
from steps.template import TemplateError, dependency_order


@dataclass
class _Switch:
    """One service moved to the new release; enough to undo it."""

    service: str
    new: list[str]
    old: list[dict[str, Any]]
    old_stopped: bool
    extra: list[str] = field(default_factory=list)  # candidates still to remove
    new_holder: str | None = None
    old_holder: dict[str, Any] | None = None
    drop_holder: str | None = None  # the service no longer publishes a fixed port


class DockerTarget:
    """Deploys a template to one engine with per-service blue-green replacement."""

    name = "docker"
    supported = container_spec.SUPPORTED
    template_problems = staticmethod(container_spec.template_problems)

    def __init__(self, client: Any, credentials: Lookup = lambda registry: None) -> None:
        import docker.errors

        self.client = client
        self.api = client.api
        self._holder_image: str | None = None
        self.res = EngineResources(client, credentials)
        self.containers = Containers(client, self.res)
        self._errors = docker.errors

    # ------------------------------------------------------------ releases

    def records(self, project: str, environment: str) -> list[Release]:
        """Every release recorded for the environment (record containers' labels)."""
        found = self.res.containers(project, environment, "release")
        return [Release.from_json(c["Labels"][LABEL_RECORD]) for c in found
                if LABEL_RECORD in c.get("Labels", {})]

    def teardown(self, project: str, environment: str, volumes: bool,
                 log: Log) -> dict[str, list[str]]:
        """Remove the environment (its data volumes only with `volumes`)."""
        return teardown(self.api, project, environment, volumes, log)

    def deploy(self, plan: Plan, log: Log) -> Release:
        """Roll out a template; see the module docstring for the order of things."""
        template = plan.template
        if problems := container_spec.template_problems(template):
            raise TemplateError.of(problems)
        image_ids: dict[str, str] = {}
        digests: dict[str, str] = {}
        with log.section("Images"):
            for service, spec in template.model["services"].items():
                image_ids[service], digests[service] = self.res.image(spec["image"], log)
        spec = {"model": template.model, "image_ids": image_ids,
                "file_hashes": template.config_hashes()}
        release = replace(plan.release, images=digests, spec=spec)
        contents = {("configs", n): c for n, c in template.configs.items()}
        contents.update({("secrets", n): c for n, c in template.secrets.items()})
        return self._rollout(release, plan.health_timeout, log, contents,
                             template.secret_environment())

    def restore(self, source: Release, plan: RestorePlan, log: Log) -> Release:
        """Run a recorded release again: its images by id (pulled by digest if gone), its files."""
        if not source.spec or "model" not in source.spec:
            raise Refused(f"release {source.id} was not recorded by the docker target")
        spec = dict(source.spec)
        image_ids = dict(spec["image_ids"])
        for service, image_id in image_ids.items():
            if not self.res.image_exists(image_id):
                image_ids[service], _ = self.res.image(source.images[service], log)
        spec["image_ids"] = image_ids
        secret_env = self.res.read_secret_environment(spec.get("secret_env") or {},
                                                      next(iter(image_ids.values())))
        spec["model"] = container_spec.with_environment(spec["model"], secret_env)
        release = replace(plan.release, images=source.images, template=source.template,
                          template_hash=source.template_hash,
                          config_hashes=source.config_hashes, spec=spec)
        return self._rollout(release, plan.health_timeout, log, {}, secret_env)

    def exec(self, project: str, environment: str, service: str, command: list[str],
             timeout: float) -> tuple[int, str]:
        """Run a verify command inside a running container of the service."""
        services = by_service(self.res.containers(project, environment, "service"))
        running = [c for c in services.get(service, []) if c["State"] == "running"]
        if not running:
            raise Refused(f"no running container of service {service!r} to run the check in")
        try:
            return exec_in(self.api, running[0]["Id"], command)
        except self._errors.APIError as e:
            raise ExternalError(f"cannot run the check in {service}: {e}") from e

    # ------------------------------------------------------------ rollout

    def _rollout(self, release: Release, timeout: float, log: Log,
                 contents: dict[tuple[str, str], bytes],
                 secret_env: dict[str, dict[str, str]]) -> Release:
        helper_image = next(iter(release.spec["image_ids"].values()))  # type: ignore[index]
        with self.res.lock(release, helper_image, timeout):
            return self._rollout_locked(release, timeout, log, contents, secret_env)

    def _rollout_locked(self, release: Release, timeout: float, log: Log,
                        contents: dict[tuple[str, str], bytes],
                        secret_env: dict[str, dict[str, str]]) -> Release:
        project, env = release.project, release.environment
        spec = release.spec or {}
        model = spec["model"]
        services = model["services"]
        helper_image = next(iter(spec["image_ids"].values()))
        stored = self.res.secret_environment(project, env, secret_env, helper_image)
        # The record keeps which volume holds each secret environment, never the values.
        recordable = {**spec, "secret_env": stored,
                      "model": container_spec.with_environment(model, {s: dict.fromkeys(v, REDACTED)
                                                         for s, v in secret_env.items()})}
        snapshot = self.containers.snapshot(project, env)
        if self.containers.tidy(project, env, log, snapshot):
            snapshot = self.containers.snapshot(project, env)
        networks = self.res.networks(project, env, model, log)
        volumes = self.res.volumes(project, env, model, log)
        files = self.res.files(project, env, model, spec["file_hashes"], contents, helper_image,
                               log)
        current = by_service(snapshot.get("service", []))
        holders = {c["Labels"].get(LABEL_SERVICE): c for c in snapshot.get("holder", [])}
        switches: list[_Switch] = []
        try:
            for service in dependency_order(services):
                self._wait_dependencies(service, services, current, switches, timeout, log)
                switch = self._roll_service(release, service, networks, volumes, files,
                                            current.get(service, []), holders.get(service),
                                            timeout, log)
                if switch:
                    switches.append(switch)
            self._monitor(release, switches, log)
        except Unhealthy as e:
            log.info(f"Release {release.id} failed: {e}")
            with log.section("Rolling back to the previous release"):
                self._revert(switches, timeout, log)
            failed = replace(release, status=FAILED, message=str(e), spec=recordable)
            self.res.record(failed, helper_image)
            back = f"; {release.previous} serves again" if release.previous else ""
            raise Refused(f"release {release.id} failed and was rolled back{back}: {e}") from None
        with log.section("Removing the previous containers"):
            self._commit(project, env, switches, current, holders, services, log)
        done = replace(release, status=SUCCEEDED, spec=recordable)
        self.res.record(done, helper_image)
        return done

    def _roll_service(self, release: Release, service: str, networks: dict[str, str],
                      volumes: dict[str, str], files: dict[tuple[str, str, str], str],
                      old: list[dict[str, Any]], old_holder: dict[str, Any] | None,
                      timeout: float, log: Log) -> _Switch | None:
        project, env = release.project, release.environment
        spec = release.spec["model"]["services"][service]  # type: ignore[index]
        image_id = release.spec["image_ids"][service]  # type: ignore[index]
        replicas = int(spec.get("deploy", {}).get("replicas", 1))
        nets = list(spec["networks"])
        first = networks[nets[0]]
        aliases = [service, *spec["networks"][nets[0]].get("aliases", [])]
        extra = {networks[n]: [service, *spec["networks"][n].get("aliases", [])]
                 for n in nets[1:]}
        mounts = container_spec.mounts(spec, volumes, files)
        holder = self._use_holder(spec)
        if holder:
            holder_kw = container_spec.holder_kwargs(project, env, service, spec, holder, first,
                                                     aliases)
            holder_hash = container_spec.config_hash(holder_kw, extra)
            final = container_spec.create_kwargs(project, env, service, spec, image_id, mounts,
                                                 first, [], with_ports=False, holder="HOLDER")
            digest = container_spec.config_hash(final, {"holder": [holder_hash]})
        else:
            final = container_spec.create_kwargs(project, env, service, spec, image_id, mounts,
                                                 first, aliases, with_ports=True)
            digest = container_spec.config_hash(final, extra)
        if (old and len(old) == replicas and all(
                c["Labels"].get(LABEL_CONFIG_HASH) == digest and c["State"] == "running"
                for c in old)):
            log.info(f"{service}: unchanged, kept running")
            return None
        conf_key = "rollback_config" if release.kind == "rollback" else "update_config"
        order = spec.get("deploy", {}).get(conf_key, {}).get("order", "start-first")
        tail = release.id.rsplit("-", 1)[-1]
        names = [f"{container_spec.container_name(project, env, service, i + 1)}-{tail}"
                 for i in range(replicas)]
        final = container_spec.with_release(final, release.id, digest)
        log.info(f"{service}: {len(old)} -> {replicas} container(s), {order}, "
                 f"image {release.images[service]}")
        if holder:
            return self._handover(release, service, spec, final, holder_kw, holder_hash, extra,
                                  old, old_holder, names[0], order, timeout, log)
        if order == "stop-first" or not old:
            self.containers.stop(old, log)
            new = [self.containers.create(n, final, extra) for n in names]
            try:
                self.containers.start_and_wait(new, names, timeout, log)
            except Unhealthy:
                self.res.remove(new)
                self._restore_old(service, old, None, timeout, log)
                raise
            return _Switch(service, new, old, old_stopped=True,
                           drop_holder=old_holder["Id"] if old_holder else None)
        # Start-first next to the old containers: the new ones join the service's DNS alias only
        # once healthy, so no request reaches a release that has not proved itself.
        hidden = {**final, "networking_config": {"EndpointsConfig": {first: {"Aliases": []}}}}
        new = [self.containers.create(n, hidden, {net: [] for net in extra}) for n in names]
        try:
            self.containers.start_and_wait(new, names, timeout, log)
            for cid in new:
                for net, net_aliases in {first: aliases, **extra}.items():
                    self.api.disconnect_container_from_network(cid, net)
                    self.api.connect_container_to_network(cid, net, aliases=net_aliases)
        except Unhealthy:
            self.res.remove(new)
            raise
        return _Switch(service, new, old, old_stopped=False,
                       drop_holder=old_holder["Id"] if old_holder else None)

    def _handover(self, release: Release, service: str, spec: dict[str, Any],
                  final: dict[str, Any], holder_kw: dict[str, Any], holder_hash: str,
                  extra: dict[str, list[str]], old: list[dict[str, Any]],
                  old_holder: dict[str, Any] | None, name: str, order: str, timeout: float,
                  log: Log) -> _Switch:
        """A service with a fixed host port: prove the release on a candidate while the old
        container serves, then hand the port over inside the holder's network namespace."""
        candidate = None
        # A rollback restores a release that already proved itself here: straight to handover
        # (still waited on, and undone if it fails now).
        if old and order == "start-first" and release.kind != "rollback":
            check = container_spec.create_kwargs(
                release.project, release.environment, service, spec, final["image"],
                final["host_config"]["Mounts"],
                next(iter(holder_kw["networking_config"]["EndpointsConfig"])), [],
                with_ports=False)
            check["labels"] = {**final["labels"], LABEL_ROLE: "candidate"}
            candidate = self.containers.create(f"{name}-check", check, {n: [] for n in extra})
            try:
                self.containers.start_and_wait([candidate], [f"{name}-check"], timeout, log)
            except Unhealthy:
                self.res.remove([candidate])
                raise
        reuse = (old_holder is not None and old_holder["State"] == "running"
                 and old_holder["Labels"].get(LABEL_CONFIG_HASH) == holder_hash)
        if reuse:
            holder_id = old_holder["Id"]  # type: ignore[index]
        else:
            kwargs = container_spec.with_release(holder_kw, release.id, holder_hash)
            holder_id = self.containers.create(f"{name}-net", kwargs, extra)
        final = {**final, "host_config": {**final["host_config"],
                                          "NetworkMode": f"container:{holder_id}"}}
        new = [self.containers.create(name, final, {})]
        try:
            if reuse:
                self._swap(old, new[0], name, log)
                self.containers.wait(new, [name], timeout, log, restart_once=True)
            else:
                started = time.monotonic()
                self.containers.stop([*old, *([old_holder] if old_holder else [])], log)
                self.containers.start_one(holder_id)
                self.containers.start_and_wait(new, [name], timeout, log, handover_from=started)
        except Unhealthy:
            self.res.remove([*new, *([candidate] if candidate else [])])
            if not reuse:
                self.res.remove([holder_id])
            self._restore_old(service, old, None if reuse else old_holder, timeout, log)
            raise
        return _Switch(service, new, old, old_stopped=True,
                       extra=[candidate] if candidate else [],
                       new_holder=None if reuse else holder_id,
                       old_holder=None if reuse else old_holder)

    def _swap(self, old: list[dict[str, Any]], new: str, name: str, log: Log) -> None:
        """Hand the port over inside the holder's namespace: signal the old process and start
        the new container at once, so the engine's clean-up of the old one overlaps the start of
        the new one. If the new process still found the port taken, it is started again once the
        old container is gone (see _wait's restart_once)."""
        started = time.monotonic()
        for c in old:
            config = self.api.inspect_container(c["Id"])["Config"]
            with contextlib.suppress(self._errors.APIError):
                self.api.kill(c["Id"], config.get("StopSignal") or "SIGTERM")
            c["_grace"] = config.get("StopTimeout") or container_spec.DEFAULT_STOP_GRACE
        try:
            self.api.start(new)
        except self._errors.APIError as e:
            raise Unhealthy(f"{name} did not start: {e.explanation or e}") from e
        for c in old:
            try:
                self.api.wait(c["Id"], timeout=c.pop("_grace"))
            except Exception:  # the grace period ran out (a read timeout): what `docker stop` does
                with contextlib.suppress(self._errors.APIError):
                    self.api.kill(c["Id"], "SIGKILL")
                self.api.wait(c["Id"])
        log.info(f"  port handed over in {time.monotonic() - started:.2f}s")

    def _use_holder(self, spec: dict[str, Any]) -> str | None:
        """The holder image when this service needs one and the engine can run it."""
        if not container_spec.published_host_ports(spec):
            return None
        if self._holder_image is None:
            self._holder_image = pause.ensure_image(self.client) if pause.supported(
                self.client) else ""
        return self._holder_image or None

    def _wait_dependencies(self, service: str, services: dict[str, Any],
                           current: dict[str, list[dict[str, Any]]], switches: list[_Switch],
                           timeout: float, log: Log) -> None:
        """depends_on service_healthy on a service this release did not touch."""
        moved = {s.service for s in switches}
        for dep, cond in services[service]["depends_on"].items():
            if cond["condition"] == "service_healthy" and dep not in moved:
                ids = [c["Id"] for c in current.get(dep, [])]
                self.containers.wait(ids, [dep] * len(ids), timeout, log)

    def _monitor(self, release: Release, switches: list[_Switch], log: Log) -> None:
        """deploy.update_config.monitor: keep watching the new containers before committing."""
        services = release.spec["model"]["services"]  # type: ignore[index]
        monitor = max((services[s.service].get("deploy", {}).get("update_config", {})
                       .get("monitor", 0) for s in switches), default=0)
        if not monitor:
            return
        log.info(f"Watching the new containers for {monitor:g}s (update_config.monitor)")
        time.sleep(monitor)
        for switch in switches:
            for cid in switch.new:
                state = self.api.inspect_container(cid)["State"]
                health = state.get("Health", {}).get("Status", "healthy")
                if not state["Running"] or health == "unhealthy":
                    raise Unhealthy(f"{switch.service} failed during the monitor period")

    def _revert(self, switches: list[_Switch], timeout: float, log: Log) -> None:
        for switch in reversed(switches):
            log.info(f"{switch.service}: back to the previous containers")
            self.res.remove(switch.new + switch.extra)
            if switch.new_holder:
                self.res.remove([switch.new_holder])
            self._restore_old(switch.service, switch.old if switch.old_stopped else [],
                              switch.old_holder, timeout, log)

    def _restore_old(self, service: str, old: list[dict[str, Any]],
                     old_holder: dict[str, Any] | None, timeout: float, log: Log) -> None:
        """Start the previous containers (and their network holder) again; a failure here is
        reported, not raised, so the release's own failure stays the error."""
        try:
            if old_holder:
                self.containers.start_one(old_holder["Id"])
            self.containers.start(old, timeout, log)
        except Unhealthy as e:
            log.warn(f"{service}: the previous containers did not recover: {e}")

    def _commit(self, project: str, env: str, switches: list[_Switch],
                current: dict[str, list[dict[str, Any]]], holders: dict[str, dict[str, Any]],
                services: dict[str, Any], log: Log) -> None:
        gone = [c for s, cs in current.items() if s not in services for c in cs]
        for switch in switches:
            if not switch.old_stopped:
                self.containers.stop(switch.old, log)
            self.res.remove([c["Id"] for c in switch.old] + switch.extra)
            self.res.remove([switch.drop_holder] if switch.drop_holder else [])
            if switch.new_holder:
                self.res.remove([switch.old_holder["Id"]] if switch.old_holder else [])
                self.api.rename(switch.new_holder,
                                container_spec.holder_name(project, env, switch.service))
            for i, cid in enumerate(switch.new):
                self.api.rename(cid, container_spec.container_name(project, env, switch.service,
                                                                   i + 1))
        if gone:
            log.info("Removing services no longer in the template: "
                     + ", ".join(sorted({c["Labels"][LABEL_SERVICE] for c in gone})))
            self.containers.stop(gone, log)
            self.res.remove([c["Id"] for c in gone])
        self.res.remove([c["Id"] for name, c in holders.items() if name not in services])

