"""The Compose file, Dockerfile and sample policy file that teams start from."""

from __future__ import annotations

from pathlib import Path

import yaml

from promotion_service.policy_file import load_policies

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "promotion-service.compose.yml"


def test_compose_file_migrates_as_the_owner_and_serves_as_a_role_that_owns_nothing():
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    migrate, service = services["migrate"], services["service"]
    assert (COMPOSE.parent / migrate["build"]["context"] / migrate["build"]["dockerfile"]
            ).is_file()
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    owner = migrate["environment"]["PROMOTION_DATABASE_OWNER_URL"]
    own = service["environment"]["PROMOTION_DATABASE_URL"]
    assert owner.startswith("postgresql+psycopg://promotion_owner:")
    assert own.startswith("postgresql+psycopg://${PROMOTION_DB_USER:-promotion}:")
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker"]["command"] == ["worker"]
    # the web pages' sessions outlive a restart only with a key from the operator
    assert service["environment"]["PROMOTION_SECRET_KEY"] == "${PROMOTION_SECRET_KEY:-}"
    mounted = service["volumes"][0].split(":")[0]
    assert (COMPOSE.parent / mounted).is_file()
    init = services["db"]["volumes"][1].split(":")[0]
    assert (COMPOSE.parent / init).is_file()


def test_the_sample_policy_file_is_valid():
    policies = load_policies(str(ROOT / "examples" / "policies.yml"))
    assert [name for name, _ in policies.default.environments] == ["test", "staging",
                                                                    "production"]
    production = dict(policies.default.environments)["production"]
    assert (production.required_approvals, production.four_eyes) == (2, True)
    assert [n for n, _ in policies.for_project("group/payments").environments][2] == "preprod"
