"""The Compose file's shape, checked against compose.schema.json with jsonschema: every key
known, every value docker-cd reads of the right type and form. Pure (reads one packaged file).

A key the Compose Specification does not have is a typo (`did you mean 'replicas'?`); a key it
has but a target cannot honour is the target's to refuse (Template.check_supported).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from functools import cache
from importlib import resources
from typing import Any

from steps.runtime.masking import REDACTED
from steps.template.merge import RESET, KeyPath, Override
from steps.template.problems import did_you_mean

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string",
               "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "null": "nothing"}


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    text = resources.files("steps.template").joinpath("compose.schema.json").read_text("utf-8")
    return Draft202012Validator(json.loads(text))


def schema_problems(document: Any, hidden: Collection[KeyPath] = ()
                    ) -> Iterator[tuple[KeyPath, str]]:
    """(key path, what is wrong) for each place one Compose file breaks the schema; the
    values at `hidden` paths (secrets) are not shown."""
    for error in sorted(_validator().iter_errors(_plain(document)),
                        key=lambda e: [str(p) for p in e.absolute_path]):
        yield from _explain(error, hidden)


def _explain(error: Any, hidden: Collection[KeyPath]) -> Iterator[tuple[KeyPath, str]]:
    path: KeyPath = tuple(error.absolute_path)
    schema, value = error.schema, error.instance
    if path in hidden:
        value = REDACTED
    if error.validator == "additionalProperties":
        known = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for key in value:
            if key in known or any(re.search(p, str(key)) for p in patterns):
                continue
            if known:
                yield (*path, key), "unknown key" + (did_you_mean(key, known) or
                                                     _choices("known keys", known))
            else:
                yield (*path, key), ("not a valid name: use letters, digits, '.', '_' and '-'")
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        branch = _fitting_branch(error)
        if branch:
            for inner in branch:
                yield from _explain(inner, hidden)
            return
    expected = schema.get("description") or _type_text(schema)
    if error.validator == "enum":
        yield path, f"{value!r} is not one of {', '.join(map(str, schema['enum']))}" + \
            did_you_mean(value, schema["enum"])
    elif error.validator == "pattern" and "x-choices" in schema:
        yield path, f"expected {expected}, got {value!r}" + did_you_mean(
            str(value).partition(":")[0], schema["x-choices"])
    elif error.validator == "required":
        missing = [k for k in schema["required"] if k not in value]
        yield path, f"{', '.join(missing)} is missing"
    elif error.validator in ("minimum", "maximum", "minLength"):
        yield path, f"expected {expected}, got {value!r}"
    else:
        yield path, f"expected {expected}, got {_describe(value)}"


def _fitting_branch(error: Any) -> list[Any]:
    """The errors of the one alternative whose kind of value matches (a mapping's own errors
    for a mapping...), or none when no single alternative does: the whole is reported then."""
    branches: dict[Any, list[Any]] = {}
    for inner in error.context:
        branches.setdefault(inner.relative_schema_path[0], []).append(inner)
    fitting = [errors for errors in branches.values() if not any(
        e.validator == "type" and e.absolute_path == error.absolute_path for e in errors)]
    return fitting[0] if len(fitting) == 1 else []


def _type_text(schema: dict[str, Any]) -> str:
    wanted = schema.get("type")
    names = [wanted] if isinstance(wanted, str) else list(wanted or [])
    names = [n for n in names if n != "null"] or names
    return " or ".join(_TYPE_NAMES.get(n, n) for n in names) or "another value"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)


def _choices(label: str, names: list[str]) -> str:
    shown = ", ".join(sorted(n for n in names if not n.startswith("x-"))[:12])
    return f" ({label}: {shown}, ...)" if len(names) > 12 else f" ({label}: {shown})"


def _plain(value: Any) -> Any:
    """The file's values as JSON types: merge tags resolved (a `!reset` key is left out)."""
    if isinstance(value, Override):
        return _plain(value.value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not RESET}
    if isinstance(value, list):
        return [_plain(v) for v in value if v is not RESET]
    return value
