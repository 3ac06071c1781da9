"""What a step hands on to later jobs: outputs as dotenv lines and a JSON file."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
    """Write the dotenv and JSON files a later job or tool reads."""
    if dotenv:
        with open(dotenv, "w", encoding="utf-8") as f:
            f.write(dotenv_text(result.outputs))
    if json_file:
        with open(json_file, "w", encoding="utf-8") as f:
            json.dump({"outputs": dict(result.outputs), **dict(result.data)}, f, indent=2,
                      default=str)
            f.write("\n")
