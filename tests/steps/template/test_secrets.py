"""`template render` shows no secret: by name, by form, by value; files holding them are 0600."""

from __future__ import annotations

import json
import stat

import pytest

from steps import cli
from steps.template import REDACTED, loads
from tests.steps.template.test_template import write

SERVICE_ACCOUNT = json.dumps({"type": "service_account", "client_email": "ci@example.iam",
                              "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END "
                                             "PRIVATE KEY-----\n"})


def rendered(environment: dict[str, str], environ: dict[str, str] | None = None) -> str:
    lines = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in environment.items())
    return loads({"compose.yml": f"services:\n  web:\n    image: a\n    environment:\n{lines}"},
                 environ or {}).rendered()


@pytest.mark.parametrize("name", [
    "AWS_SECRET_ACCESS_KEY", "DB_PASS", "SENTRY_DSN", "SIGNING_KEY", "DB_PASSWORD", "API_TOKEN",
    "GOOGLE_CREDENTIALS_JSON", "STRIPE_API_KEY", "SESSION_SECRET", "LDAP_PASSPHRASE",
])
def test_common_secret_names_are_redacted(name):
    text = rendered({name: "v3ry-s3cret-value", "PLAIN": "shown"})
    assert "v3ry-s3cret-value" not in text
    assert f"{name}: '{REDACTED}'" in text and "PLAIN: shown" in text


def test_values_from_secret_variables_are_redacted_wherever_they_are_used():
    text = loads({"compose.yml": "services:\n  web:\n    image: a\n    command: ['run', "
                                 "'--key=${SIGNING_KEY}']\n"
                                 "    labels: {token: '${CI_JOB_TOKEN}'}\n"},
                 {"SIGNING_KEY": "k3y-material-1", "CI_JOB_TOKEN": "glcbt-abcdef"}).rendered()
    assert "k3y-material-1" not in text and "glcbt-abcdef" not in text


def test_json_credentials_and_urls_with_credentials_are_redacted():
    text = rendered({"GOOGLE_APPLICATION_CREDENTIALS_CONTENT": SERVICE_ACCOUNT,
                     "DATABASE_URL": "postgres://app:hunter2hunter2@db:5432/app",
                     "HOME_URL": "https://example.com/"})
    assert "BEGIN PRIVATE KEY" not in text and "ci@example.iam" not in text
    assert "hunter2hunter2" not in text
    assert f"DATABASE_URL: postgres://app:{REDACTED}@db:5432/app" in text
    assert "HOME_URL: https://example.com/" in text


def test_a_project_adds_its_own_secret_names():
    environ = {"CD_SECRET_VARIABLES": "LDAP_BIND, *_CERT_BODY"}
    text = rendered({"LDAP_BIND": "cn=admin,pw", "TLS_CERT_BODY": "MIIB-body", "OTHER": "x"},
                    environ)
    assert "cn=admin,pw" not in text and "MIIB-body" not in text and "OTHER: x" in text


def render(tmp_path, capsys, service: str, environ: dict[str, str]):
    """`template render` of a one-service template: exit code, stdout, stderr."""
    write(tmp_path, {"compose.yml": f"services:\n  web:\n    image: a\n{service}"})
    code = cli.run(["template", "render", "--environment", "test", "--template-dir",
                    str(tmp_path)], environ)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_values_of_masked_variables_are_redacted_in_any_key(tmp_path, capsys):
    code, out, _ = render(tmp_path, capsys, "    environment:\n      PUBLIC_NOTE: ${LICENSE}\n",
                          {"LICENSE": "lic-0042-xyz", "CD_SECRET_VARIABLES": "LICENSE"})
    assert code == 0
    assert "lic-0042-xyz" not in out and "PUBLIC_NOTE: '[REDACTED]'" in out


def test_dotenv_and_json_outputs_are_readable_by_their_owner_only(tmp_path, capsys):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n"})
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "old.json").chmod(0o644)
    code = cli.run(["template", "render", "--environment", "test", "--template-dir",
                    str(tmp_path), "--json", str(tmp_path / "old.json"), "--dotenv",
                    str(tmp_path / "new.env")], {})
    capsys.readouterr()
    assert code == 0
    for name in ("old.json", "new.env"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_the_log_masks_the_values_of_the_projects_secret_variables(tmp_path, capsys):
    code, _, err = render(tmp_path, capsys, "    restart: '${MODE}'\n",
                          {"MODE": "bind-dn-s3cret", "CD_SECRET_VARIABLES": "MO*"})
    assert code == 2
    assert "bind-dn-s3cret" not in err and "got '[REDACTED]'" in err


def test_render_warns_of_an_environment_without_an_overlay(tmp_path, capsys):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n",
                     "compose.production.yml": "services: {web: {}}\n"})
    code = cli.run(["template", "render", "--environment", "prod", "--template-dir",
                    str(tmp_path)], {})
    assert code == 0
    assert "Warning: prod has no compose.prod.yml" in capsys.readouterr().err
