"""A Dockerfile with the build's labels in one LABEL instruction.

The engine's classic builder turns each label given to its build API into a LABEL step of its
own, a container created and committed apiece: the eight provenance labels of a build cost more
than a small build itself. One LABEL instruction at the end of the built stage sets them all in
one step. Pure text work; None when the Dockerfile is one this cannot edit with certainty (a
parser directive choosing another escape character, a value spanning lines, the target stage
not found), and the caller gives the labels to the engine instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_DIRECTIVE = re.compile(r"#\s*([a-z]+)\s*=\s*(\S*)\s*$", re.I)


def with_labels(text: str, labels: Mapping[str, str], target: str | None) -> str | None:
    """`text` with one `LABEL "key"="value" ...` line closing the stage the build produces
    (`target`, else the last), or None (see the module's docstring)."""
    if not labels or any("\n" in k + v or "\r" in k + v for k, v in labels.items()):
        return None
    if _escape_character(text) != "\\":
        return None
    lines = text.splitlines()
    end = _stage_end(lines, target)
    if end is None:
        return None
    label = "LABEL " + " ".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(labels.items()))
    return "\n".join([*lines[:end], label, *lines[end:]]) + "\n"


def _quote(word: str) -> str:
    """A double-quoted Dockerfile word, taken literally (no variable expansion)."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _escape_character(text: str) -> str:
    """The escape character the parser directives at the top of the Dockerfile choose."""
    for line in text.lstrip("\ufeff").splitlines():
        found = _DIRECTIVE.match(line.strip())
        if not found:
            break  # directives end at the first line that is not one
        if found.group(1).lower() == "escape":
            return found.group(2)
    return "\\"


def _stage_end(lines: list[str], target: str | None) -> int | None:
    """The index of the line after the built stage's last line (the next FROM, else the end)."""
    if not target:
        return len(lines)
    in_target, continued = False, False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue  # comments neither start nor end an instruction
        words = stripped.split()
        if not continued and words and words[0].upper() == "FROM":
            if in_target:
                return i
            in_target = (len(words) >= 4 and words[-2].upper() == "AS"
                         and words[-1].lower() == target.lower())
        continued = stripped.endswith("\\")
    return len(lines) if in_target else None
