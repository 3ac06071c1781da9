"""The project's own .gitlab-ci.yml is valid GitLab CI."""

from pathlib import Path

import yaml

from tests.schemas import gitlab_ci_validator

ROOT = Path(__file__).resolve().parents[1]


def test_project_pipeline_is_valid_gitlab_ci():
    document = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    errors = [f"{list(e.path)}: {e.message}" for e in gitlab_ci_validator().iter_errors(document)]
    assert errors == []
    assert {"lint", "unit-tests", "integration-tests"} <= document.keys()
    dind = document["integration-tests"]["services"][0]["name"]
    assert dind.startswith("docker:") and dind.endswith("dind")
