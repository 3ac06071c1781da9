"""The pinning check: which image a member's service may name in the template, and the fix
each refusal names."""

from __future__ import annotations

from steps.release import members

CACHE = "registry.example.com/vendor/cache@sha256:" + "c3" * 32


def test_a_third_party_service_named_by_a_tag_of_its_members_repository_is_no_problem():
    """Register pinned that tag's digest: deploy runs the member in its place."""
    assert members.pinning_problems(
        {"cache": "registry.example.com/vendor/cache:1.0"}, {"cache": CACHE}) == []
    assert members.by_tag({"cache": "registry.example.com/vendor/cache:1.0"},
                          {"cache": CACHE}) == {}


def test_a_service_naming_another_repository_or_digest_is_told_to_use_its_variable():
    other = "registry.example.com/vendor/cache@sha256:" + "d4" * 32
    problems = members.pinning_problems(
        {"cache": "registry.example.com/vendor/redis:7", "db": other},
        {"cache": CACHE, "db": CACHE.replace("cache@", "db@")})
    assert problems == [
        "service cache: its image is 'registry.example.com/vendor/redis:7', not "
        f"${{CD_IMAGE_CACHE}} ({CACHE}); write `image: ${{CD_IMAGE_CACHE}}` in the template "
        "(or a tag of registry.example.com/vendor/cache)",
        f"service db: its image is '{other}', not ${{CD_IMAGE_DB}} "
        f"({CACHE.replace('cache@', 'db@')}); write `image: ${{CD_IMAGE_DB}}` in the template "
        "(or a tag of registry.example.com/vendor/db)"]


def test_a_member_pinned_by_digest_is_no_problem():
    assert members.pinning_problems({"cache": CACHE}, {"cache": CACHE}) == []


def test_services_by_tag_outside_the_release_are_listed():
    assert members.by_tag({"api": "reg/api:1", "db": "postgres:16", "kv": CACHE},
                          {"api": "reg/api@sha256:" + "a" * 64}) == {"db": "postgres:16"}
