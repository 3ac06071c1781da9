"""GitLab's published JSON schemas, kept here so that the tests need nothing outside the repository.

gitlab-ci.json: GitLab's CI schema (app/assets/javascripts/editor/schema/ci.json).
container-scanning-report-format.json: security-report-schemas v15.2.4.
"""

import json
from functools import cache
from pathlib import Path

import jsonschema

HERE = Path(__file__).parent


@cache
def _schema(name: str) -> dict:
    return json.loads((HERE / f"{name}.json").read_text())


def gitlab_ci_validator() -> jsonschema.Draft7Validator:
    """Validates a .gitlab-ci.yml document (one YAML document: header or configuration)."""
    return jsonschema.Draft7Validator(_schema("gitlab-ci"))


def container_scanning_validator() -> jsonschema.Draft7Validator:
    """Validates a gl-container-scanning-report.json."""
    schema = _schema("container-scanning-report-format")
    return jsonschema.validators.validator_for(schema)(schema)
