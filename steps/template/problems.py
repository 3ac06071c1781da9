"""Every problem of a template, found in one pass, each naming where it was written.

A team fixing a template wants the whole list at once, not one error per pipeline run: the
loader, the schema, the normaliser and the checks all add to one `Problems`, and `check()`
raises a single TemplateError holding them all. A problem at a key hides later ones at the same
key or below it (the first says what is wrong there; a second would only repeat it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from difflib import get_close_matches
from typing import Any, NamedTuple

from steps.template.merge import KeyPath, where
from steps.template.model import TemplateError

_LOCATION = re.compile(r"(.+?):(\d+): ")


class Problem(NamedTuple):
    """One problem: the key path it is about and the text (`file:line: key: what`)."""

    path: KeyPath
    text: str


class Problems:
    """The problems found so far in one template."""

    def __init__(self) -> None:
        self.found: list[Problem] = []
        self.ignored: set[KeyPath] = set()  # values not checked here (variables not set)

    def add(self, raw: Any, path: KeyPath, message: str) -> None:
        """A problem at `path` of `raw` (a file's mapping or the merged one)."""
        self.add_text(path, f"{where(raw, path)}: {message}")

    def add_text(self, path: KeyPath, text: str) -> None:
        """A problem whose location is already in the text."""
        if not self.covers(path) and not any(path[:len(p)] == p for p in self.ignored):
            self.found.append(Problem(path, text))

    def touches(self, path: KeyPath) -> bool:
        """Whether a problem was found at `path`, above it or below it."""
        return any(path[:len(p.path)] == p.path or p.path[:len(path)] == path
                   for p in self.found)

    def covers(self, path: KeyPath) -> bool:
        """Whether a problem at `path` or above it was found already."""
        return any(path[:len(p.path)] == p.path for p in self.found if p.path)

    def __bool__(self) -> bool:
        return bool(self.found)

    def check(self) -> None:
        """Raise one TemplateError naming every problem (in file and line order), if any."""
        if self.found:
            files: dict[str, int] = {}
            def order(problem: Problem) -> tuple[int, int]:
                found = _LOCATION.match(problem.text)
                if not found:
                    return (-1, 0)
                return (files.setdefault(found.group(1), len(files)), int(found.group(2)))
            for problem in self.found:
                order(problem)  # files ranked in the order they were first named
            raise TemplateError.of([p.text for p in sorted(self.found, key=order)])


def did_you_mean(word: str, choices: Iterable[Any]) -> str:
    """`; did you mean 'replicas'?` when a choice is close to `word`, else nothing."""
    word, names = str(word), [str(c) for c in choices]
    close = get_close_matches(word, names, n=1, cutoff=0.6) or [
        n for n in names if len(word) >= 3 and (n.startswith(word) or word.startswith(n))][:1]
    return f"; did you mean {close[0]!r}?" if close else ""
