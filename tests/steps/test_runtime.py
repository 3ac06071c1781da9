import base64
import json

import pytest

from steps.errors import UsageError
from steps.runtime import Log, Masker, Option, Result, dotenv_text, resolve, write_outputs

OPTIONS = (
    Option("threshold", "Severity.", env=("CD_THRESHOLD", "CI_THRESHOLD", "JENKINS_THRESHOLD"),
           default="HIGH", choices=("LOW", "HIGH")),
    Option("retries", "How often.", env=("CD_RETRIES",), kind="int", default=3),
    Option("push", "Push too.", env=("CD_PUSH",), kind="flag", default=False),
    Option("tags", "Tags.", env=("CD_TAGS",), kind="list", default=()),
    Option("build-arg", "Build args.", env=("CD_BUILD_ARGS",), kind="map", default={}),
)


@pytest.mark.parametrize(
    ("given", "env", "expected", "source"),
    [
        ({}, {}, "HIGH", "default"),
        ({}, {"JENKINS_THRESHOLD": "LOW"}, "LOW", "JENKINS_THRESHOLD"),
        ({}, {"JENKINS_THRESHOLD": "HIGH", "CI_THRESHOLD": "LOW"}, "LOW", "CI_THRESHOLD"),
        ({}, {"CI_THRESHOLD": "HIGH", "CD_THRESHOLD": "LOW"}, "LOW", "CD_THRESHOLD"),
        ({"threshold": "LOW"}, {"CD_THRESHOLD": "HIGH"}, "LOW", "--threshold"),
        ({}, {"CD_THRESHOLD": ""}, "HIGH", "default"),  # GitLab passes unset inputs as ""
    ],
)
def test_precedence_option_then_cd_then_gitlab_then_jenkins_then_default(
        given, env, expected, source):
    values, sources = resolve(OPTIONS, given, env)
    assert values["threshold"] == expected
    assert sources["threshold"] == source


def test_kinds_are_parsed_from_variables():
    values, _ = resolve(OPTIONS, {}, {"CD_RETRIES": "5", "CD_PUSH": "true",
                                      "CD_TAGS": "a, b,,c", "CD_BUILD_ARGS": "A=1\nB=x=y"})
    assert values["retries"] == 5
    assert values["push"] is True
    assert values["tags"] == ("a", "b", "c")
    assert values["build_arg"] == {"A": "1", "B": "x=y"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CD_THRESHOLD": "MEDIUM"}, "CD_THRESHOLD: must be one of LOW, HIGH; got 'MEDIUM'"),
        ({"CD_RETRIES": "many"}, "CD_RETRIES: invalid literal"),
        ({"CD_PUSH": "maybe"}, "CD_PUSH: expected true or false"),
        ({"CD_BUILD_ARGS": "NOVALUE"}, "CD_BUILD_ARGS: expected KEY=VALUE"),
    ],
)
def test_a_wrong_variable_names_itself(env, message):
    with pytest.raises(UsageError) as e:
        resolve(OPTIONS, {}, env)
    assert message in e.value.message


def test_masker_hides_secret_and_its_encoded_forms():
    masker = Masker()
    masker.add_basic_auth("user", "p@ss word!")
    text = ("pw=p@ss word! url=p%40ss%20word%21 "
            f"header=Basic {base64.b64encode(b'user:p@ss word!').decode()}")
    masked = masker(text)
    assert "p@ss" not in masked and "p%40ss" not in masked
    assert "dXNlcjpwQHNz" not in masked
    assert masked.count("[MASKED]") == 3


def test_log_masks_every_line(capsys):
    masker = Masker()
    masker.add("hunter2-secret")
    log = Log(masker=masker)
    log.command(["docker", "login", "-p", "hunter2-secret"])
    log.info("token hunter2-secret used")
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "+ docker login -p [MASKED]\n" in err


def test_gitlab_sections_wrap_their_lines(capsys):
    log = Log(sections=True)
    with log.section("Build image", collapsed=True):
        log.info("step 1/3")
    err = capsys.readouterr().err
    assert "section_start:" in err and "[collapsed=true]" in err and "Build image" in err
    assert err.index("step 1/3") < err.index("section_end:")


def test_outputs_are_written_as_dotenv_and_json(tmp_path):
    result = Result({"CD_IMAGE": "r/app@sha256:" + "a" * 64}, {"tags": ["a", "b"]})
    write_outputs(result, str(tmp_path / "out.env"), str(tmp_path / "out.json"))
    assert (tmp_path / "out.env").read_text() == "CD_IMAGE=r/app@sha256:" + "a" * 64 + "\n"
    assert json.loads((tmp_path / "out.json").read_text())["tags"] == ["a", "b"]


def test_dotenv_refuses_multiline_values():
    with pytest.raises(ValueError, match="single line"):
        dotenv_text({"CD_X": "a\nb"})
