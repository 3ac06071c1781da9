"""The swarm target: the application template as Docker Swarm services, rolled out and rolled back.

    deploy   template -> overlay network, configs/secrets named by content hash, one service per
             template service, created or updated wave by wave in depends_on order; each wave
             must converge (tasks running, i.e. healthy) before the next starts; services
             whose tasks stay as they are take the release's labels last
    failure  swarm's own rollback (update_config.failure_action: rollback, the default here),
             then every service this release touched goes back to the spec it had before
    records  one swarm config per release (role=release) holding Release.to_json(), so the
             swarm alone knows the history; Release.spec keeps the service specs to restore

The translation itself (template -> Engine API ServiceSpec) is pure: steps.targets.swarm.spec.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from steps.images.engine import Lookup
from steps.images.pull import check_pullable
from steps.release import FAILED, SUCCEEDED, Release
from steps.runtime.errors import Refused, UsageError
from steps.runtime.log import Log
from steps.targets import (
    LABEL_CONFIG_HASH,
    LABEL_ENVIRONMENT,
    LABEL_PROJECT,
    LABEL_RELEASE,
    LABEL_ROLE,
    LABEL_SERVICE,
    Plan,
    RestorePlan,
    exec_in,
    label_filter,
)
from steps.targets.swarm import secret_env
from steps.targets.swarm.objects import SwarmObjects
from steps.targets.swarm.stack import SUPPORTED, Stack, check_host_ports
from steps.targets.swarm.teardown import teardown
from steps.targets.swarm.updates import (
    PENDING_GRACE,
    TASK_FAILED,
    Baseline,
    ServiceFailed,
    canary_spec,
    describe_task,
    engine_errors,
    needs_canary,
    run_canary,
    same_tasks,
    spec_args,
    task_hash,
    why_task_ended,
)

if TYPE_CHECKING:
    from steps.template import Template

KEEP_OBJECTS_OF = 10  # configs/secrets of the last N succeeded releases stay, for rollbacks


class SwarmTarget:
    """Deploys to the Docker Swarm the engine (DOCKER_HOST) manages."""

    name = "swarm"
    supported = SUPPORTED

    @staticmethod
    def template_problems(template: Template) -> list[str]:
        """What swarm cannot do with this template (steps.targets.swarm.spec)."""
        from steps.targets.swarm.spec import template_problems

        return template_problems(template)

    def __init__(self, client: Any, credentials: Lookup = lambda registry: None,
                 poll: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.credentials = credentials
        self.api = client.api
        self.poll = poll
        self.clock = clock
        self._scope: dict[str, str] = {}
        self.store = SwarmObjects(self.api)

    # ------------------------------------------------------------------ the Target interface

    def deploy(self, plan: Plan, log: Log) -> Release:
        """Roll out the template; on failure restore what ran before and raise Refused."""
        from steps.targets.swarm.spec import plan_stack  # the template's modules: deploys only

        with engine_errors():
            self._check_manager()
            release = plan.release
            stack = plan_stack(plan.template, plan.project, plan.environment, release.id)
            self._check_host_ports(stack, plan.template)
            check_pullable(self.client, _images(stack.services), log, self.credentials)
            self.store.ensure_networks(stack.networks, log)
            self.store.ensure_objects(stack, plan.template, log)
            spec = {"stack": stack.name, "networks": stack.networks,
                    "objects": {o.name: o.kind for o in stack.objects},
                    "services": stack.services, "waves": stack.waves,
                    "secret_env": secret_env.hashes(plan.template.secret_environment())}
            return self._roll_out(release, spec, plan.health_timeout, log, canary=True)

    def restore(self, source: Release, plan: RestorePlan, log: Log) -> Release:
        """Run a recorded release again from its stored service specs (no repo needed)."""
        with engine_errors():
            self._check_manager()
            if not source.spec or "services" not in source.spec:
                raise Refused(f"release {source.id} holds no swarm spec to restore")
            spec = dict(source.spec)
            release = replace(plan.release, images=dict(source.images))
            spec["services"] = {
                name: {**svc, "Labels": {**svc["Labels"], LABEL_RELEASE: release.id}}
                for name, svc in spec["services"].items()}
            self._scope = {LABEL_PROJECT: release.project, LABEL_ENVIRONMENT: release.environment}
            live = {}
            for name in spec.get("secret_env") or {}:
                found = self._service_named(name) or {}
                live[name] = [(found.get(key) or {}).get("TaskTemplate", {}).get(
                    "ContainerSpec", {}).get("Env") for key in ("Spec", "PreviousSpec")]
            spec = secret_env.restored(spec, live)
            check_pullable(self.client, _images(spec["services"]), log, self.credentials)
            self.store.ensure_networks(spec["networks"], log)
            missing = [n for n, kind in spec.get("objects", {}).items()
                       if not self.store.find(kind, n)]
            if missing:
                raise Refused(f"cannot restore release {source.id}: swarm object(s) "
                              f"{', '.join(sorted(missing))} no longer exist")
            # A recorded release proved itself already: no canary, back as fast as swarm goes.
            return self._roll_out(release, spec, plan.health_timeout, log, canary=False)

    def records(self, project: str, environment: str) -> list[Release]:
        """Every release recorded on this swarm for (project, environment)."""
        with engine_errors():
            return self.store.records(project, environment)

    def teardown(self, project: str, environment: str, volumes: bool,
                 log: Log) -> dict[str, list[str]]:
        """Remove the environment's stack (its volumes only with `volumes`)."""
        with engine_errors():
            self._check_manager()
            return teardown(self.api, project, environment, volumes, log)

    def exec(self, project: str, environment: str, service: str, command: list[str],
             timeout: float) -> tuple[int, str]:
        """Run a verify command inside a running task of the service (on this node)."""
        with engine_errors():
            self._scope = {LABEL_PROJECT: project, LABEL_ENVIRONMENT: environment}
            found = self._service_named(service)
            tasks = self.api.tasks(filters={"service": found["ID"], "desired-state": "running"}
                                   ) if found else []
            running = [t for t in tasks if t["Status"]["State"] == "running"]
            if not running:
                raise Refused(f"no running task of service {service!r} to run the check in")
            cid = running[0]["Status"]["ContainerStatus"]["ContainerID"]
            import docker.errors

            try:
                return exec_in(self.api, cid, command)
            except docker.errors.NotFound as e:
                raise Refused(f"cannot run the check in {service}: its task runs on another "
                              f"node than DOCKER_HOST ({e})") from e

    # ------------------------------------------------------------------ the rollout

    def _roll_out(self, release: Release, spec: dict[str, Any], timeout: float,
                  log: Log, canary: bool) -> Release:
        """Apply every service wave by wave; converge, or put back what ran and refuse."""
        labels = {LABEL_PROJECT: release.project, LABEL_ENVIRONMENT: release.environment}
        self._scope = labels
        before = self._services(labels)
        self._remove_canaries(labels)
        deadline = self.clock() + timeout
        touched: list[str] = []
        services = spec["services"]
        # Services whose tasks stay as they are only take the release's labels, after the
        # others: nothing of theirs restarts, and the changed ones (a rollback's) start sooner.
        unchanged = [name for name in services if name in before
                     and same_tasks(before[name]["Spec"], services[name])]
        try:
            changing = [[name for name in wave if name not in unchanged]
                        for wave in spec["waves"]]
            for wave in [*changing, unchanged]:
                started = {}
                for name in wave:
                    services[name] = self.store.resolve_refs(services[name])
                    started[name] = self._apply(name, services[name], before.get(name),
                                                release.id, deadline, log, canary)
                    touched.append(name)
                self._converge(started, deadline, log)
        except ServiceFailed as e:
            log.info(f"Release {release.id} failed: {e}")
            restored = self._put_back(touched, before, self.clock() + timeout, log)
            failed = replace(release, status=FAILED, message=str(e), spec=secret_env.redacted(spec),
                             images=self.store.images(spec["services"], release.images))
            self.store.record(failed)
            self._clean_objects(labels, log)
            if not restored:
                back = "the rollback did not complete: check `docker service ps`"
            elif before:
                back = f"the previous release ({release.previous or 'unrecorded'}) runs"
            else:
                back = "nothing ran before: its services were removed"
            raise Refused(f"release {release.id} failed: {e}; {back}") from None
        except Exception as e:  # an engine or input error mid-way: put back what we can, re-raise
            log.info(f"Release {release.id} failed: {e}")
            with suppress(Exception):
                self._put_back(touched, before, self.clock() + timeout, log)
            with suppress(Exception):
                self.store.record(replace(release, status=FAILED, spec=secret_env.redacted(spec),
                                          message=str(e)))
            raise
        for name, current in before.items():
            if name not in services:
                log.command(["docker", "service", "rm", current["Spec"]["Name"]])
                self.api.remove_service(current["ID"])
        done = replace(release, status=SUCCEEDED, spec=secret_env.redacted(spec),
                       images=self.store.images(services, release.images))
        self.store.record(done)
        self._clean_objects(labels, log)
        log.info(f"Release {release.id} is running on the swarm ({len(services)} service(s)).")
        return done

    def _apply(self, name: str, desired: dict[str, Any], current: dict[str, Any] | None,
               release_id: str, deadline: float, log: Log, canary: bool) -> Baseline:
        """Create or update one service; returns what ran before it."""
        image = desired["TaskTemplate"]["ContainerSpec"]["Image"]
        if current is None:
            log.command(["docker", "service", "create", "--name", desired["Name"], image])
            self.api.create_service(**spec_args(desired))
            return Baseline()
        baseline = self._baseline(current)
        if same_tasks(current["Spec"], desired):
            log.command(["docker", "service", "update", "--label-add",
                         f"{LABEL_RELEASE}={release_id}", desired["Name"]])
        else:
            if canary and needs_canary(current["Spec"], desired):
                run_canary(self.api, name, canary_spec(desired, self._scope), deadline,
                           self.clock, self.poll, log)
            was = current["Spec"]["TaskTemplate"]["ContainerSpec"].get("Image")
            log.command(["docker", "service", "update", *(["--image", image] if image != was
                                                          else []), desired["Name"]])
        self.api.update_service(current["ID"], current["Version"]["Index"], **spec_args(desired))
        return baseline

    def _baseline(self, service: dict[str, Any]) -> Baseline:
        tasks = self.api.tasks(filters={"service": service["ID"]})
        status = service.get("UpdateStatus") or {}
        return Baseline(frozenset(t["ID"] for t in tasks), status.get("StartedAt"))

    def _converge(self, started: Mapping[str, Baseline], deadline: float, log: Log,
                  restoring: bool = False) -> None:
        """Wait until each service's tasks run its current spec; raise ServiceFailed otherwise."""
        waiting = dict(started)
        first_seen: dict[str, float] = {}
        while True:
            for name, baseline in list(waiting.items()):
                state, message = self._state(name, baseline, first_seen, restoring)
                if state == "converged":
                    log.info(f"  {name}: {message}")
                    del waiting[name]
                elif state == "failed":
                    raise ServiceFailed(name, message)
            if not waiting:
                return
            if self.clock() > deadline:
                name, baseline = next(iter(waiting.items()))
                _, message = self._state(name, baseline, first_seen, restoring)
                raise ServiceFailed(name, f"not running after the health timeout ({message})")
            time.sleep(self.poll)

    def _state(self, name: str, baseline: Baseline, first_seen: dict[str, float],
               restoring: bool) -> tuple[str, str]:
        """converged | waiting | failed, and why, for one service of this rollout."""
        service = self._service_named(name)
        if service is None:
            return "failed", "the service disappeared"
        spec = service["Spec"]
        config_hash = spec["Labels"].get(LABEL_CONFIG_HASH)
        status = service.get("UpdateStatus") or {}
        update = status.get("State") if status.get("StartedAt") != baseline.update_started else None
        tasks = self.api.tasks(filters={"service": service["ID"]})
        new = [t for t in tasks if t["ID"] not in baseline.tasks]
        if update in ("paused", "rollback_paused") or (
                update in ("rollback_started", "rollback_completed") and not restoring):
            failed = [t for t in new if t["Status"]["State"] in TASK_FAILED]
            why = f" ({why_task_ended(self.api, failed[-1])})" if failed else ""
            return "failed", f"update {update.replace('_', ' ')}: {status.get('Message', '')}{why}"
        in_progress = update in ("updating", "rollback_started")
        if not in_progress:
            for task in new:
                if task_hash(task) != config_hash:
                    continue
                if task["Status"]["State"] in TASK_FAILED:
                    return "failed", describe_task(task)
                if task["Status"]["State"] == "pending" and task["Status"].get("Err"):
                    seen = first_seen.setdefault(task["ID"], self.clock())
                    if self.clock() - seen > PENDING_GRACE:
                        return "failed", f"task cannot be placed: {task['Status']['Err']}"
        running = [t for t in tasks if t["DesiredState"] == "running"]
        ready = [t for t in running if task_hash(t) == config_hash
                 and t["Status"]["State"] == "running"]
        replicas = (spec["Mode"].get("Replicated") or {}).get("Replicas")
        wanted = replicas if replicas is not None else max(len(running), 1)
        progress = f"{len(ready)}/{wanted} task(s) running"
        if not in_progress and len(ready) >= wanted and len(ready) == len(running):
            return "converged", progress
        return "waiting", progress

    def _put_back(self, touched: list[str], before: Mapping[str, dict[str, Any]],
                  deadline: float, log: Log) -> bool:
        """Return every service this rollout touched to the spec it had before; True if all ran."""
        ok = True
        for name in reversed(touched):
            previous = before.get(name)
            current = self._service_named(name)
            if previous is None:
                if current is not None:
                    log.command(["docker", "service", "rm", current["Spec"]["Name"]])
                    self.api.remove_service(current["ID"])
                continue
            prev_spec = previous["Spec"]
            if current is None:
                log.command(["docker", "service", "create", "--name", prev_spec["Name"]])
                self.api.create_service(**spec_args(prev_spec))
                baseline = Baseline()
            elif not same_tasks(current["Spec"], prev_spec):
                log.command(["docker", "service", "rollback", prev_spec["Name"]])
                baseline = self._baseline(current)
                self.api.update_service(current["ID"], current["Version"]["Index"],
                                        **spec_args(prev_spec))
            elif current["Spec"].get("Labels") != prev_spec.get("Labels"):  # only relabelled
                self.api.update_service(current["ID"], current["Version"]["Index"],
                                        **spec_args(prev_spec))
                continue
            else:  # swarm rolled it back itself (or is doing so): wait for it
                log.info(f"  {name}: swarm rolled it back")
                failed = self.api.tasks(filters={"service": current["ID"]})
                baseline = Baseline(frozenset(t["ID"] for t in failed
                                               if t["Status"]["State"] in TASK_FAILED), None)
            try:
                self._converge({name: baseline}, deadline, log, restoring=True)
            except ServiceFailed as e:
                log.warn(f"rolling back {name} did not converge: {e}")
                ok = False
        return ok

    # ------------------------------------------------------------------ checks and lookups

    def _check_manager(self) -> None:
        swarm = self.client.info().get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise UsageError("the Docker engine (DOCKER_HOST) is not a swarm manager; point "
                             "DOCKER_HOST at a manager node, run `docker swarm init`, or use "
                             "--target docker", "target")

    def _check_host_ports(self, stack: Stack, template: Template) -> None:
        nodes = [n for n in self.api.nodes() if n["Status"]["State"] == "ready"
                 and n["Spec"].get("Availability") == "active"]
        check_host_ports(stack, template, len(nodes))

    def _clean_objects(self, labels: Mapping[str, str], log: Log) -> None:
        """Remove configs/secrets of this stack that no service and no recent release uses."""
        keep: set[str] = set()
        for service in self._services(labels).values():
            container = service["Spec"]["TaskTemplate"]["ContainerSpec"]
            keep |= {r.get("ConfigName") for r in container.get("Configs") or []}
            keep |= {r.get("SecretName") for r in container.get("Secrets") or []}
        records = self.store.records(labels[LABEL_PROJECT], labels[LABEL_ENVIRONMENT])
        recent = sorted((r for r in records if r.status == SUCCEEDED),
                        key=lambda r: (r.created, r.id))
        for record in recent[-KEEP_OBJECTS_OF:]:
            keep |= set((record.spec or {}).get("objects", {}))
        self.store.clean_objects(labels, keep, log)

    def _services(self, labels: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        found = self.api.services(filters=label_filter(labels))
        return {s["Spec"]["Labels"][LABEL_SERVICE]: s for s in found
                if s["Spec"]["Labels"].get(LABEL_ROLE) == "service"}

    def _remove_canaries(self, labels: Mapping[str, str]) -> None:
        """Canaries an interrupted deploy left behind."""
        canaries = self.api.services(filters=label_filter({**labels, LABEL_ROLE: "canary"}))
        for service in canaries:
            self.api.remove_service(service["ID"])

    def _service_named(self, name: str) -> dict[str, Any] | None:
        """The service of the stack being rolled out whose template name is `name`."""
        found = self.api.services(filters=label_filter(
            {**self._scope, LABEL_SERVICE: name, LABEL_ROLE: "service"}))
        return found[0] if found else None


def _images(services: Mapping[str, dict[str, Any]]) -> list[str]:
    """The images of a stack's services. The nodes pull them with the credentials docker-py
    sends with each service create and update (`--with-registry-auth`; steps.images.engine)."""
    return [spec["TaskTemplate"]["ContainerSpec"]["Image"] for spec in services.values()]
