"""The README stays true: its commands exist, and its step reference matches the steps."""

import re
from pathlib import Path

from scripts import step_reference

ROOT = Path(__file__).resolve().parents[1]


def test_step_reference_in_readme_is_current():
    readme = (ROOT / "README.md").read_text()
    assert step_reference.updated(readme) == readme, (
        "run `python scripts/step_reference.py` to update README.md")


def test_first_lines_give_the_demo_and_test_commands_and_ci_runs_the_same():
    first = (ROOT / "README.md").read_text().split("```", 2)[1]
    demo, tests = [line.split("#")[0].strip() for line in first.splitlines()[1:3]]
    for script in re.findall(r"bash (\S+)", demo + " " + tests):
        assert (ROOT / script).is_file(), script
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests.replace("bash .ci/setup && ", "").replace(" && ", "\n") in ci
