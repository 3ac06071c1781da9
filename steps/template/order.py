"""Start order: each service after everything it depends on (depends_on), cycles named. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from steps.template.merge import KeyPath
from steps.template.model import TemplateError


def ordered(services: Mapping[str, Mapping[str, Any]],
                      fail: Callable[[KeyPath, str], Exception]) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join([*chain[chain.index(name):], name])
            raise fail(("services", name, "depends_on"), f"dependency cycle: {cycle}")
        state[name] = "visiting"
        for dep in services[name].get("depends_on", {}):
            if dep in services:  # an unknown one is a problem of its own
                visit(dep, [*chain, name])
        state[name] = "done"
        order.append(name)

    for name in services:
        visit(name, [])
    return order


def dependency_order(services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Service names so that each comes after everything it depends on."""
    return ordered(services, lambda path, message: TemplateError(message))

