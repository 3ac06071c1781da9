"""Write the README's per-step option tables from the steps' own declarations (their settings).

    python scripts/step_reference.py          # rewrite README.md between the markers
    python scripts/step_reference.py --check  # exit 1 when README.md is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.generated import replaced, write_or_check  # noqa: E402
from steps.cli import Common  # noqa: E402
from steps.commands import STEPS, load_step  # noqa: E402
from steps.runtime.inputs import Option, options_of  # noqa: E402

BEGIN = "<!-- step-reference:begin (scripts/step_reference.py writes this part) -->"
END = "<!-- step-reference:end -->"
DOCS = {
    "build": "docs/steps-build-push-tag.md", "push": "docs/steps-build-push-tag.md",
    "tag": "docs/steps-build-push-tag.md", "scan": "docs/steps-scan.md",
    "template check": "docs/deploy.md", "template render": "docs/deploy.md",
    "deploy": "docs/deploy.md", "verify": "docs/deploy.md", "rollback": "docs/deploy.md",
    "releases": "docs/deploy.md", "teardown": "docs/deploy.md",
    "register": "docs/ci-templates.md", "gate": "docs/gitlab-integration.md",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(option: Option) -> str:
    name = option.dest.upper() if option.positional else f"`{option.flag}`"
    variables = ", ".join(f"`{v}`" for v in option.env) or "—"
    default = option.default
    if isinstance(default, tuple):
        default = ",".join(default)
    shown = "" if default in (None, False, (), "", {}) else f"`{default}`"
    text = option.help + (f" One of: {', '.join(option.choices)}." if option.choices else "")
    return f"| {name} | {variables} | {shown} | {_cell(text)} |"


def render() -> str:
    """The markdown for every step: its summary, then a table of options and variables."""
    parts = [BEGIN, ""]
    for name in STEPS:
        step = load_step(name)
        parts += [f"### docker-cd {name}", "", _cell(step.help.strip().splitlines()[0]), "",
                  "| option | variables (highest first) | default | what |",
                  "|---|---|---|---|"]
        parts += [_row(o) for o in options_of(step.settings)]
        parts += ["", f"More: [{DOCS[name]}]({DOCS[name]}).", ""]
    common = ", ".join(f"`{o.flag}`" for o in options_of(Common))
    parts += [f"Every step also takes {common}.", "", END]
    return "\n".join(parts)


def updated(readme: str) -> str:
    """README text with the generated part replaced."""
    return replaced(readme, BEGIN, END, render())


if __name__ == "__main__":
    sys.exit(write_or_check(ROOT / "README.md", BEGIN, END, render, sys.argv[1:],
                            "scripts/step_reference.py"))
