"""Write docs/promotion-service.md's role table from the roles each API view lets through.

    python scripts/role_table.py          # rewrite the table between the markers
    python scripts/role_table.py --check  # exit 1 when the docs are out of date

Every view under /api/v1 declares its roles (promotion_service/api/auth.py: require_roles,
require_token); a view that declares none is an error here, so no endpoint goes unlisted.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promotion_service import create_app  # noqa: E402
from promotion_service.api import PREFIX  # noqa: E402
from promotion_service.api.auth import ROLES_ATTRIBUTE  # noqa: E402
from promotion_service.domain.actor import ROLES  # noqa: E402
from scripts.generated import replaced, write_or_check  # noqa: E402

DOCS = ROOT / "docs" / "promotion-service.md"
BEGIN = "<!-- role-table:begin (scripts/role_table.py writes this part) -->"
END = "<!-- role-table:end -->"
UNDOCUMENTED = f"{PREFIX}/openapi.json", f"{PREFIX}/docs"  # the API's description, public
METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")


def roles_by_endpoint() -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path under /api/v1, roles) of every API endpoint, in path order."""
    app = create_app({"DATABASE_URL": "sqlite://", "TESTING": True})
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/") or rule.rule.startswith(UNDOCUMENTED):
            continue
        roles = getattr(app.view_functions[rule.endpoint], ROLES_ATTRIBUTE, None)
        if roles is None:
            raise SystemExit(f"{rule.rule} declares no roles (require_roles/require_token)")
        path = rule.rule.removeprefix(PREFIX).replace("<int:", "<").replace("<name>", "<env>")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}, key=METHOD_ORDER.index):
            found.append((method, path, tuple(roles)))
    return sorted(found, key=lambda r: (r[1], METHOD_ORDER.index(r[0])))


def render() -> str:
    """The markdown table: one row per endpoint, one column per role."""
    lines = [BEGIN, "", "| method | path | " + " | ".join(ROLES) + " |",
             "|---|---|" + ":-:|" * len(ROLES)]
    for method, path, roles in roles_by_endpoint():
        cells = " | ".join("✓" if role in roles else "" for role in ROLES)
        lines.append(f"| {method} | `{path}` | {cells} |")
    return "\n".join([*lines, "", END])


def updated(text: str) -> str:
    """The docs with the generated table replaced."""
    return replaced(text, BEGIN, END, render())


if __name__ == "__main__":
    sys.exit(write_or_check(DOCS, BEGIN, END, render, sys.argv[1:], "scripts/role_table.py"))
