"""Fixtures for the promotion service: the same tests on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import gc
import itertools
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from docker_cd_local.gitlab_double import GitLabDouble
from promotion_service import create_app, db
from promotion_service.db.schema import upgrade
from promotion_service.domain.actor import Actor
from promotion_service.services import tokens as token_store
from tests.promotion_service.gitlab_fixtures import GITLAB_TOKEN, TRIGGER_TOKEN
from tests.promotion_service.postgres import PostgresServer, start_postgres

# The policy every test app runs with (tests change it through the API when they need to).
POLICIES = {
    "defaults": {"environments": [
        {"name": "test", "max_severity": "critical"},
        {"name": "staging", "auto_promote": True, "min_soak": "10m", "max_severity": "high"},
        {"name": "production", "required_approvals": 2, "four_eyes": True,
         "approver_roles": ["approver", "release-manager"], "max_severity": "medium"},
    ]},
    "projects": {"group/app": {}},  # listed: CI jobs' ID tokens may create it
}
# token name -> (role, project scope); each token's person is its name
TOKENS = {
    "ci-bot": ("ci", "group/app"), "alice": ("approver", None), "bob": ("approver", None),
    "rm": ("release-manager", None), "admin": ("admin", None),
    "carol": ("approver", None), "ci-other": ("ci", "other/app"),
}
_counter = itertools.count()
AUDIENCE = "https://promotion.example.com"  # what the jobs' id_tokens ask for


@pytest.fixture(scope="session")
def oidc() -> Iterator[GitLabDouble]:
    """A GitLab that signs CI/CD ID tokens; every test app trusts it (PROMOTION_OIDC_*)."""
    with GitLabDouble() as gitlab:
        yield gitlab


@pytest.fixture
def id_token(oidc: GitLabDouble) -> Any:
    """Mint a job's ID token: id_token(user_login="alice", environment="production", ...)."""

    def mint(**claims: Any) -> str:
        defaults = {"audience": AUDIENCE, "project_path": "group/app", "pipeline_id": 500,
                    "user_login": "dev", "sha": "ab" * 20}
        return oidc.mint_id_token(**(defaults | claims))

    return mint


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (fails loudly if it cannot start)."""
    server = start_postgres()
    template = create_engine(server.url(), isolation_level="AUTOCOMMIT")
    with template.connect() as conn:
        conn.execute(text("CREATE DATABASE promotion_template"))
    template.dispose()
    upgrade(server.url("promotion_template"))
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    name = f"t{next(_counter)}"
    admin = create_engine(postgres_server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE promotion_template"))
    yield postgres_server.url(name)
    # A connection a test dropped without closing is reset when the garbage collector finds it.
    # Found after the database is gone, its reset fails and logs a traceback in whatever code
    # runs then; Python 3.11 formats that traceback with ast.parse, which breaks an ast.parse in
    # progress (werkzeug compiling a route: "AST constructor recursion depth mismatch").
    gc.collect()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh migrated database: every test using it runs on SQLite and on PostgreSQL."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    path = tmp_path / "promotion.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def policy_file(tmp_path: Any) -> str:
    path = tmp_path / "policies.yml"
    path.write_text(yaml.safe_dump(POLICIES))
    return str(path)


@pytest.fixture
def app_settings() -> dict[str, Any]:
    """More settings for the `app` (a test overrides it with pytest.mark.parametrize)."""
    return {}


@pytest.fixture
def app(database_url: str, policy_file: str, oidc: GitLabDouble,
        app_settings: dict[str, Any]) -> Iterator[Any]:
    """The service on a fresh database, trusting the `oidc` GitLab's ID tokens."""
    app = create_app({"DATABASE_URL": database_url, "POLICY_FILE": policy_file,
                      "TESTING": True, "TOKEN_CACHE_SECONDS": 0,
                      "OIDC_ISSUER": oidc.url, "OIDC_AUDIENCE": AUDIENCE} | app_settings)
    yield app
    db.engine_of(app).dispose()


@pytest.fixture
def tokens(app: Any) -> dict[str, str]:
    """Bearer tokens by name (see TOKENS)."""
    made = {}
    with db.session_for(app) as session:
        for name, (role, project) in TOKENS.items():
            made[name] = token_store.create(session, Actor.system("tests"), name=name,
                                            role=role, project=project)[1]
    return made


class ApiClient:
    """The Flask test client with a bearer token per call and /api/v1 prefixed."""

    def __init__(self, client: Any, tokens: dict[str, str]) -> None:
        self.client, self.tokens = client, tokens

    def call(self, method: str, path: str, as_: str | None = "ci-bot", **kwargs: Any) -> Any:
        """as_ names a token of TOKENS, or is a bearer credential itself (an ID token)."""
        headers = kwargs.pop("headers", {})
        if as_ is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(as_, as_)}"
        url = path if path.startswith("/api") else f"/api/v1{path}"
        return self.client.open(url, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.call("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.call("PATCH", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.call("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("DELETE", path, **kw)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def api(client: Any, tokens: dict[str, str]) -> ApiClient:
    """Call the API as one of TOKENS: api.post('/images', json=..., as_='ci-bot')."""
    return ApiClient(client, tokens)


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture(scope="module")
def double() -> Iterator[GitLabDouble]:
    """One GitLab double per test module, knowing project 42 group/app (refs main, deploy)."""
    with GitLabDouble(access_token=GITLAB_TOKEN) as gitlab:
        gitlab.add_project(42, "group/app", trigger_token=TRIGGER_TOKEN, refs=("main", "deploy"))
        yield gitlab


@pytest.fixture
def gitlab(double: GitLabDouble) -> GitLabDouble:
    """The module's GitLab double with earlier tests' calls and pipelines forgotten."""
    double.reset()
    return double
