"""The project's own .gitlab-ci.yml is valid GitLab CI."""

import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT.parent / "shared" / "reference" / "schemas" / "gitlab-ci.json"


def gitlab_ci_validator() -> jsonschema.Draft7Validator:
    """A validator for GitLab CI files, from GitLab's published schema."""
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def test_project_pipeline_is_valid_gitlab_ci():
    document = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    errors = [f"{list(e.path)}: {e.message}" for e in gitlab_ci_validator().iter_errors(document)]
    assert errors == []
    assert {"lint", "unit-tests", "integration-tests"} <= document.keys()
    dind = document["integration-tests"]["services"][0]["name"]
    assert dind.startswith("docker:") and dind.endswith("dind")
