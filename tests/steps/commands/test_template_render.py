"""`docker-cd template render`: the merged template as a deploy would roll it out."""

from __future__ import annotations

from steps import cli
from tests.steps.template.test_template import write


def test_render_step_prints_the_merged_template(tmp_path, capsys):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: ${CD_IMAGE}\n",
                     "compose.staging.yml":
                         "services:\n  web:\n    environment: {TOKEN: t0ps3cret}\n"})
    code = cli.run(["template", "render", "--environment", "staging", "--template-dir",
                    str(tmp_path)], {"CD_IMAGE": "reg/app@sha256:" + "a" * 64})
    out = capsys.readouterr().out
    assert code == 0
    assert "image: reg/app@sha256:" + "a" * 64 in out
    assert "TOKEN: '[REDACTED]'" in out and "t0ps3cret" not in out


def test_render_step_fails_on_a_missing_required_variable(tmp_path, capsys):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: ${CD_IMAGE:?set CD_IMAGE}\n"})
    code = cli.run(["template", "render", "--environment", "test", "--template-dir",
                    str(tmp_path)], {})
    err = capsys.readouterr().err
    assert code == 2
    assert "Error: " in err and "compose.yml:3: services.web.image: required variable CD_IMAGE" \
        " is not set: set CD_IMAGE" in err


def test_render_step_rejects_a_key_the_target_cannot_honour(tmp_path, capsys):
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: a\n    pid: host\n"})
    code = cli.run(["template", "render", "--environment", "test", "--template-dir",
                    str(tmp_path)], {})
    assert code == 2
    assert "compose.yml:4: services.web.pid: the docker target does not support this key" in \
        capsys.readouterr().err


def test_a_member_whose_variable_is_unset_is_told_which_variable(tmp_path, capsys):
    """A template of several images renders only with each member's CD_IMAGE_<NAME>: the error
    names that form, not only the one-image ${CD_IMAGE}."""
    write(tmp_path, {"compose.yml": "services:\n  web:\n    image: ${CD_IMAGE_WEB}\n"})
    code = cli.run(["template", "render", "--environment", "test", "--template-dir",
                    str(tmp_path)], {})
    assert code == 2
    assert "${CD_IMAGE_<NAME>}" in capsys.readouterr().err


def test_render_step_shows_a_releases_third_party_member_by_its_digest(tmp_path, capsys):
    api, kv = "reg/shop/api@sha256:" + "a" * 64, "reg/vendor/kv@sha256:" + "b" * 64
    write(tmp_path, {"compose.yml": "services:\n  api:\n    image: ${CD_IMAGE_API}\n"
                                    "  kv:\n    image: reg/vendor/kv:1.0\n"})
    code = cli.run(["template", "render", "--environment", "test", "--template-dir",
                    str(tmp_path)], {"CD_RELEASE_ID": "4", "CD_IMAGE_API": api,
                                     "CD_IMAGE_KV": kv})
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"image: {kv}" in captured.out and "kv:1.0" not in captured.out
    assert "service kv: reg/vendor/kv:1.0 pinned to " + kv in captured.err

    code = cli.run(["template", "render", "--environment", "test", "--template-dir",
                    str(tmp_path)], {"CD_RELEASE_ID": "4", "CD_IMAGE_API": api})
    assert code == 2  # as deploy: the release does not pin kv
    assert "service kv: reg/vendor/kv:1.0 is named by tag and release 4 does not pin it" in \
        capsys.readouterr().err
