"""The commands: one module per step, each exposing `STEP`.

A command declares its inputs once, as a frozen settings dataclass (see steps.runtime.inputs),
checks them in `validate(settings)` with no side effects, and does its work in
`execute(settings, ctx)`, taking every outside client from the context (steps.context). A
command never imports another: what two commands share lives in the library it describes,
and the inputs they share in steps.commands.inputs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from steps.context import Context
    from steps.runtime.outputs import Result

# The steps, in the order `docker-cd --help` lists them; "template render" is
# steps.commands.template_render.
STEPS = ("build", "push", "tag", "scan", "template check", "template render", "deploy",
         "verify", "rollback", "releases", "teardown", "register", "gate")


class Step(NamedTuple):
    """A step as the CLI sees it: its name, help, settings class, checks and work."""

    name: str
    help: str
    settings: type
    execute: Callable[[Any, Context], Result]
    validate: Callable[[Any], None] = lambda settings: None


def load_step(name: str) -> Step:
    """The Step a name stands for (its module is imported only now)."""
    return importlib.import_module(f"steps.commands.{name.replace(' ', '_')}").STEP
