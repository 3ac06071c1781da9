"""Image references parsed as the Docker CLI reads them."""

import pytest

from steps.images.reference import (
    Reference,
    digest_reference,
    is_bare_tag,
    parse_reference,
    split_image,
    untagged,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("text", "expected"), [
    ("busybox", Reference("docker.io", "library/busybox")),
    ("group/app:1.0", Reference("docker.io", "group/app", "1.0")),
    ("localhost/app", Reference("localhost", "app")),
    ("127.0.0.1:5000/a/b:v1", Reference("127.0.0.1:5000", "a/b", "v1")),
    (f"reg.example.com/a/b@{DIGEST}", Reference("reg.example.com", "a/b", None, DIGEST)),
    (f"reg.example.com/a/b:v1@{DIGEST}", Reference("reg.example.com", "a/b", "v1", DIGEST)),
])
def test_parse(text, expected):
    assert parse_reference(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("reg.example.com/App:v1", "not a valid repository name component"),
    ("reg.example.com/a:-v1", "not a valid tag"),
    ("reg.example.com/a@sha256:xyz", "not a digest"),
])
def test_parse_errors_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_reference(text)


def test_str_and_reference_round_trip():
    ref = parse_reference(f"reg.example.com/a/b:v1@{DIGEST}")
    assert str(ref) == f"reg.example.com/a/b:v1@{DIGEST}"
    assert ref.reference == DIGEST
    assert str(ref.with_tag("v2")) == "reg.example.com/a/b:v2"
    assert ref.with_digest(DIGEST).name == "reg.example.com/a/b"


@pytest.mark.parametrize(("text", "bare"), [("latest", True), ("v1.2.3", True),
                                            ("reg/app:v1", False), ("app:v1", False)])
def test_bare_tag(text, bare):
    assert is_bare_tag(text) is bare


@pytest.mark.parametrize(("ref", "repository"), [
    ("app:v1", "app"),
    ("registry:5000/team/app:v1", "registry:5000/team/app"),
    ("registry:5000/team/app", "registry:5000/team/app"),  # the port is no tag
    ("app", "app"),
])
def test_untagged_drops_the_tag_and_keeps_a_registry_port(ref, repository):
    assert untagged(ref) == repository


def test_the_digest_reference_is_the_one_of_the_tagged_repository():
    digests = [f"other/app@{DIGEST}", f"registry:5000/team/app@{DIGEST}"]
    assert digest_reference("registry:5000/team/app:v1", digests) == digests[1]
    assert digest_reference("elsewhere/app:v1", digests) is None


@pytest.mark.parametrize(("image", "expected"), [
    (f"registry:5000/team/app:v1@{DIGEST}", ("registry:5000/team/app", DIGEST)),
    (f"registry:5000/team/app@{DIGEST}", ("registry:5000/team/app", DIGEST)),
    ("registry:5000/team/app:v1", None),  # a tag alone cannot be reported
])
def test_the_promotion_service_gets_repository_and_digest(image, expected):
    assert split_image(image) == expected
