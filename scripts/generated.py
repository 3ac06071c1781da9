"""A generated part of a document, between two marker lines: replace it, or check it is current.

scripts/step_reference.py (the README's step tables) and scripts/role_table.py (the service's
role table) write their parts with this.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def replaced(text: str, begin: str, end: str, generated: str) -> str:
    """The text with what stands between the markers (markers included) replaced."""
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    return head + generated + tail


def write_or_check(path: Path, begin: str, end: str, render: Callable[[], str],
                   argv: list[str], script: str) -> int:
    """Rewrite the part (exit 0), or with --check exit 1 when it is out of date."""
    current = path.read_text()
    if begin not in current or end not in current:
        print(f"{path} lacks the markers {begin!r} ... {end!r}", file=sys.stderr)
        return 1
    new = replaced(current, begin, end, render())
    if "--check" in argv:
        if new != current:
            print(f"{path.name} is out of date: run python {script}", file=sys.stderr)
            return 1
        return 0
    path.write_text(new)
    return 0
