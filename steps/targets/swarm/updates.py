"""Swarm service updates and their tasks: the arguments of a service spec, whether an update
changes the tasks, the canary that proves a stop-first update (run_canary), and how a task is
described."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from steps.runtime.errors import ExternalError
from steps.runtime.log import Log
from steps.targets import LABEL_CONFIG_HASH, LABEL_ROLE, LABEL_SERVICE
from steps.targets.swarm.stack import holds_data

TASK_FAILED = {"failed", "rejected", "orphaned"}
PENDING_GRACE = 5.0  # seconds a task may wait for a node before "no suitable node" is final


class ServiceFailed(Exception):
    """A service did not converge: `service` is its template name."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


@dataclass(frozen=True)
class Baseline:
    """What a service ran before this rollout touched it: its tasks and its last update."""

    tasks: frozenset[str] = frozenset()
    update_started: str | None = ""  # "" = any update status counts as this rollout's


def spec_args(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"task_template": spec["TaskTemplate"], "name": spec["Name"],
            "labels": spec.get("Labels") or {}, "mode": spec.get("Mode"),
            "update_config": spec.get("UpdateConfig") or {},
            "rollback_config": spec.get("RollbackConfig") or {},
            "endpoint_spec": spec.get("EndpointSpec") or {}}


def same_tasks(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Would applying `desired` leave the running tasks as they are (labels aside)?"""
    return (current.get("Labels", {}).get(LABEL_CONFIG_HASH)
            == desired["Labels"].get(LABEL_CONFIG_HASH)
            and current.get("Mode") == desired.get("Mode"))


def needs_canary(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """A stop-first update of a stateless service with a health check gets a canary first.

    Services holding data (volume or bind mounts) are left out: two tasks on one data
    directory could harm it.
    """
    container = desired["TaskTemplate"]["ContainerSpec"]
    health = (container.get("Healthcheck") or {}).get("Test") or ["NONE"]
    changed = (current.get("Labels", {}).get(LABEL_CONFIG_HASH)
               != desired["Labels"].get(LABEL_CONFIG_HASH))
    return (changed and desired["UpdateConfig"].get("Order") == "stop-first"
            and health[0] != "NONE" and not holds_data(container))


def canary_spec(desired: Mapping[str, Any], scope: Mapping[str, str]) -> dict[str, Any]:
    """The new spec as one throw-away task: no ports, no aliases, no restarts."""
    task = json.loads(json.dumps(desired["TaskTemplate"]))
    task["Networks"] = [{"Target": n["Target"]} for n in task.get("Networks") or []]
    task["RestartPolicy"] = {"Condition": "none"}
    task["Placement"] = {k: v for k, v in (task.get("Placement") or {}).items()
                         if k != "MaxReplicas"}
    service = desired["Labels"].get(LABEL_SERVICE, "")
    return {"Name": desired["Name"][:56] + "-canary", "TaskTemplate": task,
            "Labels": {**scope, LABEL_SERVICE: service, LABEL_ROLE: "canary"},
            "Mode": {"Replicated": {"Replicas": 1}}, "EndpointSpec": {"Mode": "dnsrr"}}


def task_hash(task: Mapping[str, Any]) -> str | None:
    container = (task.get("Spec") or {}).get("ContainerSpec") or {}
    return container.get("Labels", {}).get(LABEL_CONFIG_HASH)


def describe_task(task: Mapping[str, Any]) -> str:
    status = task["Status"]
    return f"task {status['State']}: {status.get('Err') or status.get('Message') or ''}".strip()


def task_health(api: Any, task: Mapping[str, Any]) -> dict[str, Any]:
    """The health state of a task's container (empty when it has none or is gone)."""
    cid = (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
    if not cid or task["Status"]["State"] not in ("starting", "running", "failed",
                                                   "complete", "shutdown"):
        return {}
    try:
        return api.inspect_container(cid)["State"].get("Health") or {}
    except Exception:  # the container is gone already
        return {}


def why_task_ended(api: Any, task: Mapping[str, Any]) -> str:
    """Why a task ended: its container's failing health check output, else its status."""
    health = task_health(api, task)
    if health.get("Status") == "unhealthy":
        failures = [e for e in health.get("Log") or [] if e.get("ExitCode") not in (0, 137)]
        last = failures[-1] if failures else (health.get("Log") or [{}])[-1]
        output = " ".join(str(last.get("Output", "")).split())[:200]
        return f"health check failed (exit {last.get('ExitCode')}): {output or 'no output'}"
    return describe_task(task)


@contextmanager
def engine_errors() -> Iterator[None]:
    """Engine API errors become ExternalError once, here at the boundary."""
    import docker.errors
    import requests

    try:
        yield
    except (docker.errors.APIError, requests.RequestException) as e:
        raise ExternalError(f"the swarm manager failed: {e}") from e


def run_canary(api: Any, name: str, spec: dict[str, Any], deadline: float,
               clock: Callable[[], float], poll: float, log: Log) -> None:
    """Prove the new tasks healthy beside the old ones before a stop-first update stops them.

    The canary (`spec`: canary_spec's) runs the new task spec without published ports or
    network aliases (it gets no traffic) and never restarts; if it does not become healthy the
    release fails while the old tasks still serve: a failed update interrupts nothing.
    """
    log.command(["docker", "service", "create", "--name", spec["Name"], "--restart-condition",
                 "none", spec["TaskTemplate"]["ContainerSpec"]["Image"]])
    sid = api.create_service(**spec_args(spec))["ID"]
    try:
        started = clock()
        while True:
            tasks = api.tasks(filters={"service": sid})
            if "running" in [t["Status"]["State"] for t in tasks]:
                log.info(f"  {name}: the new task is healthy ({clock() - started:.1f}s); "
                         "updating the service")
                return
            done = [t for t in tasks if t["Status"]["State"] in (*TASK_FAILED, "complete",
                                                                  "shutdown")
                    or task_health(api, t).get("Status") == "unhealthy"]
            if done:
                raise ServiceFailed(name, "the new version failed before taking over (the "
                                    f"running tasks were not touched): "
                                    f"{why_task_ended(api, done[0])}")
            pending = [t for t in tasks if t["Status"]["State"] == "pending"
                       and t["Status"].get("Err")]
            if pending and clock() - started > PENDING_GRACE:
                raise ServiceFailed(name, f"task cannot be placed: {pending[0]['Status']['Err']}")
            if clock() > deadline:
                raise ServiceFailed(name, "the new version was not healthy within the health "
                                    "timeout; the running tasks were not touched")
            time.sleep(poll)
    finally:
        api.remove_service(sid)
