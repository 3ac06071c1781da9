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
