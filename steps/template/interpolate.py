"""Variable interpolation in Compose values: $VAR, ${VAR}, ${VAR:-default}, ${VAR:?message}, $$.

Pure; the rules are the Compose Specification's (which follow the POSIX shell's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class InterpolationError(ValueError):
    """A ${VAR:?message} whose variable is missing, or a malformed ${...}."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text: str, environ: Mapping[str, str]) -> tuple[str, set[str]]:
    """Expand $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?m}, ${VAR?m}, ${VAR:+x}, ${VAR+x}, $$.

    Returns the text and the names of the variables it used (to redact secrets).
    """
    used: set[str] = set()
    value, _ = _expand(text, 0, environ, used, closing=False)
    return value, used


def unset_without_default(text: str, environ: Mapping[str, str]) -> list[str]:
    """Variables written as $VAR or ${VAR} (no default) that are not set: worth a warning."""
    return [m.group(1) or m.group(2) for m in _PLAIN_REF.finditer(text.replace("$$", ""))
            if (m.group(1) or m.group(2)) not in environ]


_PLAIN_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _expand(text: str, i: int, environ: Mapping[str, str], used: set[str],
            closing: bool) -> tuple[str, int]:
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if closing and ch == "}":
            return "".join(out), i
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            value, i = _braced(text, i + 2, environ, used)
            out.append(value)
        elif (m := _NAME.match(text, i + 1)) is not None:
            used.add(m.group())
            out.append(environ.get(m.group(), ""))
            i = m.end()
        else:
            raise InterpolationError(f"invalid interpolation format in {text!r}: a lone '$' "
                                     "(write $$ for a literal dollar sign)")
    if closing:
        raise InterpolationError(f"missing '}}' in {text!r}")
    return "".join(out), i


def _braced(text: str, i: int, environ: Mapping[str, str], used: set[str]) -> tuple[str, int]:
    m = _NAME.match(text, i)
    if m is None:
        raise InterpolationError(f"invalid variable name in {text!r}")
    name = m.group()
    used.add(name)
    i = m.end()
    op = next((o for o in (":-", ":?", ":+", "-", "?", "+") if text.startswith(o, i)), None)
    if op is None:
        if text[i:i + 1] != "}":
            raise InterpolationError(f"invalid interpolation format for ${{{name}...}} in {text!r}")
        return environ.get(name, ""), i + 1
    arg, end = _expand(text, i + len(op), environ, used, closing=True)
    value = environ.get(name)
    is_set = value is not None and (value != "" or ":" not in op)
    if op.endswith("-"):
        result = value if is_set else arg
    elif op.endswith("+"):
        result = arg if is_set else ""
    else:
        if not is_set:
            why = "is not set" if value is None else "is empty"
            raise InterpolationError(f"required variable {name} {why}: "
                                     f"{arg or 'set it in the CI/CD variables'}")
        result = value
    return result or "", end + 1
