"""The docker target's containers: created, started, waited on until healthy (or until they
stay up without a health check), stopped; and what an interrupted rollout left, tidied."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from steps.runtime.errors import ExternalError
from steps.runtime.log import Log
from steps.targets import LABEL_ROLE, LABEL_SERVICE
from steps.targets.docker import spec as container_spec
from steps.targets.docker.resources import EngineResources

POLL = 0.05
STABLE_WITHOUT_HEALTHCHECK = 0.5


class Unhealthy(Exception):
    """A service of the release did not become healthy."""


class Containers:
    """Container calls of one rollout, with the engine's errors turned into the target's."""

    def __init__(self, client: Any, res: EngineResources) -> None:
        import docker.errors

        self.api = client.api
        self.res = res
        self._errors = docker.errors

    def create(self, name: str, kwargs: dict[str, Any], extra: dict[str, list[str]]) -> str:
        try:
            created = self.api.create_container(name=name, **kwargs)
            for network, aliases in extra.items():
                self.api.connect_container_to_network(created["Id"], network,
                                                      aliases=aliases or None)
        except self._errors.APIError as e:
            raise ExternalError(f"cannot create container {name}: {e.explanation or e}") from e
        return created["Id"]

    def start_one(self, cid: str) -> None:
        try:
            self.api.start(cid)
        except self._errors.APIError as e:
            raise Unhealthy(f"container {cid[:12]} did not start: {e.explanation or e}") from e

    def start_and_wait(self, ids: list[str], names: list[str], timeout: float, log: Log,
                        handover_from: float | None = None) -> None:
        for cid, name in zip(ids, names, strict=True):
            try:
                self.api.start(cid)
            except self._errors.APIError as e:
                raise Unhealthy(f"{name} did not start: {e.explanation or e}") from e
        if handover_from is not None:
            log.info(f"  port handed over in {time.monotonic() - handover_from:.2f}s")
        self.wait(ids, names, timeout, log)

    def wait(self, ids: list[str], names: list[str], timeout: float, log: Log,
              restart_once: bool = False) -> None:
        """Wait until every container is healthy (or, without a healthcheck, stays up 0.5 s)."""
        deadline = time.monotonic() + timeout
        for cid, name in zip(ids, names, strict=True):
            started = time.monotonic()
            restarts = 1 if restart_once else 0
            while True:
                info = self.api.inspect_container(cid)
                state = info["State"]
                health = (state.get("Health") or {}).get("Status")
                if state["Status"] in ("exited", "restarting") and restarts:
                    restarts -= 1  # it may have found the port still taken by the old process
                    log.info(f"  {name} exited while the port was handed over; starting it again")
                    if state["Status"] == "exited":
                        self.start_one(cid)
                    time.sleep(POLL)
                    continue
                if state["Status"] in ("exited", "dead", "restarting"):
                    raise Unhealthy(f"{name} exited with code {state.get('ExitCode')}"
                                    f"{self.tail(cid)}")
                settled = time.monotonic() - started >= STABLE_WITHOUT_HEALTHCHECK
                if health == "healthy" or (health is None and state["Running"] and settled):
                    log.info(f"  {name}: {'healthy' if health else 'running'} after "
                             f"{time.monotonic() - started:.1f}s")
                    break
                if health == "unhealthy":
                    probes = (state.get("Health") or {}).get("Log") or [{}]
                    output = str(probes[-1].get("Output", "")).strip()[-300:]
                    raise Unhealthy(f"{name} is unhealthy (health check: {output or 'failed'})")
                if time.monotonic() > deadline:
                    raise Unhealthy(f"{name} was not healthy within {timeout:g}s "
                                    "(--health-timeout)")
                time.sleep(POLL)

    def tail(self, cid: str) -> str:
        try:
            text = self.api.logs(cid, tail=5).decode(errors="replace").strip()
        except self._errors.APIError:
            return ""
        return f"; last output: {text[-400:]}" if text else ""

    def stop(self, containers: list[dict[str, Any]], log: Log) -> None:
        for c in containers:
            if c.get("State") == "running" or c.get("State") is None:
                with contextlib.suppress(self._errors.NotFound):
                    self.api.stop(c["Id"])

    def start(self, containers: list[dict[str, Any]], timeout: float, log: Log) -> None:
        ids = [c["Id"] for c in containers]
        names = [c["Names"][0].lstrip("/") for c in containers]
        self.start_and_wait(ids, names, timeout, log)

    def snapshot(self, project: str, env: str) -> dict[str, list[dict[str, Any]]]:
        """The environment's containers by role, in one call to the engine."""
        out: dict[str, list[dict[str, Any]]] = {}
        for c in self.res.containers(project, env, None):
            out.setdefault(c["Labels"].get(LABEL_ROLE, ""), []).append(c)
        return out

    def tidy(self, project: str, env: str, log: Log,
              snapshot: dict[str, list[dict[str, Any]]]) -> bool:
        """Finish what an interrupted rollout left: candidates go, pending containers are renamed
        when their service has no container under its proper name, else removed. Returns
        whether anything changed."""
        changed = bool(snapshot.get("candidate"))
        self.res.remove([c["Id"] for c in snapshot.get("candidate", [])])
        holders = snapshot.get("holder", [])
        names = {c["Names"][0].lstrip("/") for c in holders}
        for c in holders:
            service = c["Labels"].get(LABEL_SERVICE, "")
            proper = container_spec.holder_name(project, env, service)
            if c["Names"][0].lstrip("/") != proper:
                changed = True
                if c["State"] == "running" and proper not in names:
                    self.api.rename(c["Id"], proper)
                    names.add(proper)
                else:
                    self.res.remove([c["Id"]])
        for service, containers in by_service(snapshot.get("service", [])).items():
            proper = {container_spec.container_name(project, env, service, i + 1)
                      for i in range(len(containers))}
            names = {c["Names"][0].lstrip("/") for c in containers}
            for c in containers:
                name = c["Names"][0].lstrip("/")
                if name in proper:
                    continue
                changed = True
                free = sorted(proper - names)
                if free and c["State"] == "running":
                    log.warn(f"adopting {name} left by an interrupted deploy as {free[0]}")
                    self.api.rename(c["Id"], free[0])
                    names.add(free[0])
                else:
                    log.warn(f"removing {name} left by an interrupted deploy")
                    self.res.remove([c["Id"]])
        return changed


def by_service(containers: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Service containers grouped by service, in name order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for c in sorted(containers, key=lambda c: c["Names"][0]):
        out.setdefault(c["Labels"][LABEL_SERVICE], []).append(c)
    return out
