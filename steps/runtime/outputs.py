"""What a step hands on to later jobs: outputs as dotenv lines and a JSON file."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(frozen=True)
class Result:
    """What a step hands on: `outputs` go to the dotenv (CD_* variables) and the JSON file;
    `data` only to the JSON file."""

    outputs: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


def dotenv_text(outputs: Mapping[str, str]) -> str:
    """Outputs as GitLab's dotenv report takes them: one KEY=VALUE a line, values single-line."""
    lines = []
    for key, value in outputs.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"not a variable name: {key!r}")
        text = str(value)
        if "\n" in text:
            raise ValueError(f"{key}: a dotenv value must be a single line")
        lines.append(f"{key}={text}\n")
    return "".join(lines)


def write_outputs(result: Result, dotenv: str | None, json_file: str | None) -> None:
    """Write the dotenv and JSON files a later job or tool reads (readable by the job's user
    only: they may hold what a later job needs to know and nobody else)."""
    if dotenv:
        with private_file(dotenv) as f:
            f.write(dotenv_text(result.outputs))
    if json_file:
        with private_file(json_file) as f:
            json.dump({"outputs": dict(result.outputs), **dict(result.data)}, f, indent=2,
                      default=str)
            f.write("\n")


def private_file(path: str) -> TextIO:
    """A file opened for writing with mode 0600, whether it is new or already there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")
