"""Who may call what: the docs' role table is the code's, and every write, tried with every role
and with tokens of another project, is refused where it must be."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from promotion_service import db
from promotion_service.db.models import AuditEntry
from promotion_service.domain.actor import ROLES, Actor
from promotion_service.services import tokens
from scripts import role_table
from tests.promotion_service.helpers import deploy, promoted_to_staging, ref

WRITES = [(m, p) for m, p, _ in role_table.roles_by_endpoint() if m != "GET"]


def test_the_docs_role_table_is_the_codes():
    docs = role_table.DOCS.read_text()
    assert role_table.updated(docs) == docs, "run `python scripts/role_table.py`"


def test_every_endpoint_is_in_the_table_with_its_roles():
    table = {(m, p): roles for m, p, roles in role_table.roles_by_endpoint()}
    assert table[("POST", "/approvals")] == ("approver", "release-manager", "admin")
    assert table[("PUT", "/projects/<project_id>/environments/<env>/policy")] == ("admin",)
    assert table[("POST", "/claims")] == ("ci", "release-manager", "admin")
    assert all(roles == ROLES for (m, _), roles in table.items() if m == "GET")


def world(api: Any, app: Any) -> dict[str, Any]:
    """group/app's image 1 live in staging with a claimed promotion, an approval, a stop."""
    promotion_id = promoted_to_staging(api, app, 1)
    api.post("/claims", json=ref(1, "staging") | {"promotion_id": promotion_id,
                                                  "pipeline_id": 9})
    deployment = deploy(api, 1, "staging", state="started")
    approval = api.post("/approvals", json=ref(1, "production"), as_="alice").json
    [stop] = api.post("/stops", json={"environments": ["qa"], "reason": "drill"}, as_="rm").json
    policy = api.get("/projects/1", as_="rm").json["environments"][2]["policy"]
    return {"promotion": promotion_id, "deployment": deployment["id"],
            "approval": approval["id"], "stop": stop["id"], "policy": policy,
            "image": api.get("/images", as_="rm").json[0]["id"],
            "release": api.get("/releases", as_="rm").json[0]["id"]}


def request(method: str, path: str, w: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A plausible request for each write of the API, on group/app's things."""
    url = (path.replace("<project_id>", "1").replace("<env>", "staging")
           .replace("<image_id>", str(w["image"])).replace("<deployment_id>",
                                                           str(w["deployment"]))
           .replace("<promotion_id>", str(w["promotion"]))
           .replace("<approval_id>", str(w["approval"])).replace("<stop_id>", str(w["stop"]))
           .replace("<release_id>", str(w["release"])))
    bodies = {
        ("POST", "/images"): ref(2) | {"project": "group/app"},
        ("POST", "/releases"): {"project": "group/app", "members": [ref(3) | {"name": "api"}]},
        ("POST", "/scans"): ref(1) | {"counts": {"critical": 0}},
        ("POST", "/deployments"): ref(1, "test") | {"state": "succeeded"},
        ("PATCH", "/deployments/<deployment_id>"): {"state": "failed"},
        ("POST", "/verifications"): ref(1, "test") | {"passed": True},
        ("POST", "/approvals"): ref(1, "production"),
        ("POST", "/promotions"): ref(1, "production"),
        ("PATCH", "/promotions/<promotion_id>"): {"state": "failed", "message": "x"},
        ("POST", "/claims"): ref(1, "staging") | {"promotion_id": w["promotion"],
                                                  "pipeline_id": 10},
        ("POST", "/images/<image_id>/revoke"): {"reason": "test"},
        ("POST", "/projects"): {"path": "group/app"},
        ("PUT", "/projects/<project_id>/environments/<env>/policy"): w["policy"] | {
            "reason": "tighter", "required_approvals": 3},
        ("POST", "/projects/<project_id>/environments/<env>/rollback"): {"reason": "test"},
        ("PUT", "/projects/<project_id>/environments/<env>/hold"): {"reason": "test"},
        ("POST", "/stops"): {"environments": ["staging"], "reason": "test"},
    }
    return url, bodies.get((method, path))


def make_tokens(app: Any, api: Any, project: str | None, suffix: str) -> dict[str, str]:
    """A token of every role (ci needs a project, so unscoped ones get all projects)."""
    names = {}
    with db.session_for(app) as session:
        for role in ROLES:
            name = f"{role}-{suffix}"
            api.tokens[name] = tokens.create(session, Actor.system("tests"), name=name,
                                             role=role, project=project,
                                             all_projects=project is None)[1]
            names[role] = name
    return names


def attempt(api: Any, as_: str, method: str, path: str, w: dict[str, Any]) -> Any:
    url, body = request(method, path, w)
    return api.call(method, url, as_=as_, **({"json": body} if body is not None else {}))


def test_every_write_with_every_role(api, app):
    w = world(api, app)
    allowed = {(m, p): r for m, p, r in role_table.roles_by_endpoint()}
    names = make_tokens(app, api, None, "any")
    for method, path in WRITES:  # the role is checked before anything else is looked at
        for role, name in names.items():
            resp = attempt(api, name, method, path, w)
            refused_for_role = (resp.status_code == 403
                                and resp.json["message"].startswith("role "))
            assert refused_for_role == (role not in allowed[(method, path)]), (
                method, path, role, resp.status_code, resp.json)


def test_every_write_with_another_projects_tokens_is_refused_and_changes_nothing(
        api, app, id_token):
    w = world(api, app)
    names = make_tokens(app, api, "other/app", "foreign")
    names["ci (ID token)"] = id_token(project_path="other/app", environment="staging",
                                      pipeline_id=10)
    before = audit_count(app)
    for method, path in WRITES:
        for role, name in names.items():
            resp = attempt(api, name, method, path, w)
            assert resp.status_code == 403, (method, path, role, resp.status_code, resp.json)
    assert audit_count(app) == before


def audit_count(app: Any) -> int:
    with db.session_for(app, write=False) as session:
        return session.scalar(select(func.count()).select_from(AuditEntry))
