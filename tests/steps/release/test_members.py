"""The pinning check's messages name the fix that works in every pipeline."""

from __future__ import annotations

from steps.release import members

CACHE = "registry.example.com/vendor/cache@sha256:" + "c3" * 32


def test_a_third_party_service_named_by_tag_is_told_to_default_to_it():
    """The service's pipelines set CD_IMAGE_CACHE to the release's pin; the build pipeline
    does not, so the fix must keep the tag as the default (a bare ${CD_IMAGE_CACHE} would leave
    the test deploy without an image)."""
    problems = members.pinning_problems(
        {"cache": "registry.example.com/vendor/cache:1.0"}, {"cache": CACHE})
    assert problems == [
        "service cache: its image is 'registry.example.com/vendor/cache:1.0', not "
        f"${{CD_IMAGE_CACHE}} ({CACHE}); write `image: ${{CD_IMAGE_CACHE}}` in the template "
        "(for an image the pipeline does not build: "
        "`image: ${CD_IMAGE_CACHE:-registry.example.com/vendor/cache:1.0}`)"]


def test_a_built_member_pinned_by_digest_is_no_problem():
    assert members.pinning_problems({"cache": CACHE}, {"cache": CACHE}) == []
