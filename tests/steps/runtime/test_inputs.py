"""Inputs declared once: a settings field carries its option, groups nest, precedence holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from steps.runtime.errors import UsageError
from steps.runtime.inputs import Input, group, option, options_of, resolve, settings_from

RETRIES = Input("How often.", env=("CD_RETRIES",), default=3)


@dataclass(frozen=True)
class Build:
    push: bool = option("Push too.", env=("CD_PUSH",), default=False)
    build_arg: Mapping[str, str] | None = option("Build args.", env=("CD_BUILD_ARGS",))


@dataclass(frozen=True)
class Settings:
    threshold: str = option("Severity.", env=("CD_THRESHOLD", "CI_THRESHOLD", "JENKINS_THRESHOLD"),
                            default="HIGH", choices=("LOW", "HIGH"))
    retries: int = RETRIES.field()
    build: Build = group(Build)
    tags: tuple[str, ...] = option("Tags.", env=("CD_TAGS",), default=())


OPTIONS = options_of(Settings)


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


def test_groups_are_flattened_in_declaration_order_with_kinds_from_the_field_types():
    assert [(o.flag, o.kind) for o in OPTIONS] == [
        ("--threshold", "str"), ("--retries", "int"), ("--push", "flag"),
        ("--build-arg", "map"), ("--tags", "list")]
    assert OPTIONS[1].default == 3 and OPTIONS[1].describe() == "--retries (CD_RETRIES)"


def test_the_settings_object_nests_its_groups_and_keeps_the_declared_defaults():
    values, _ = resolve(OPTIONS, {"push": True}, {"CD_TAGS": "a"})
    settings = settings_from(Settings, values)
    assert settings == Settings(retries=3, build=Build(push=True), tags=("a",))
    assert Settings() == settings_from(Settings, resolve(OPTIONS, {}, {})[0])


def test_an_option_declared_twice_is_refused_when_the_settings_are_read():
    @dataclass(frozen=True)
    class Twice:
        retries: int = RETRIES.field()
        again: Settings = group(Settings)

    with pytest.raises(TypeError, match="options declared twice: retries"):
        options_of(Twice)


def test_a_field_type_with_no_option_kind_is_refused():
    @dataclass(frozen=True)
    class Odd:
        ratio: complex = option("A ratio.")

    with pytest.raises(TypeError, match=r"Odd.ratio: an option's type is one of .*; got complex"):
        options_of(Odd)
