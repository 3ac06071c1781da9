"""How every target names images and environments (steps.targets)."""

from __future__ import annotations

import pytest

from steps.reporting import split_image
from steps.targets import digest_reference, untagged

DIGEST = "sha256:" + "a" * 64


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
