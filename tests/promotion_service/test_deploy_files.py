"""The Compose file, Dockerfile and sample policy file that teams start from."""

from __future__ import annotations

from pathlib import Path

import yaml

from promotion_service.policy_file import load_policies

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "promotion-service.compose.yml"


def test_compose_file_runs_the_service_with_postgresql():
    doc = yaml.safe_load(COMPOSE.read_text())
    service = doc["services"]["service"]
    assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert service["environment"]["PROMOTION_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert service["depends_on"]["db"]["condition"] == "service_healthy"
    assert doc["services"]["worker"]["command"] == ["worker"]
    mounted = service["volumes"][0].split(":")[0]
    assert (COMPOSE.parent / mounted).is_file()


def test_the_sample_policy_file_is_valid():
    policies = load_policies(str(ROOT / "examples" / "policies.yml"))
    assert [name for name, _ in policies.default.environments] == ["test", "staging",
                                                                    "production"]
    production = dict(policies.default.environments)["production"]
    assert (production.required_approvals, production.four_eyes) == (2, True)
    assert [n for n, _ in policies.for_project("group/payments").environments][2] == "preprod"
