"""Tag schemes: which tags a pipeline's commit, ref and git tag give an image."""

import pytest

from steps.images.tag_schemes import needs_existing_tags, parse_version, scheme_tags, semver_tags

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(("git_tag", "existing", "expected"), [
    ("v1.2.3", [], ["1.2.3", "1.2", "1", "latest"]),
    ("1.2.3", ["1.2.2", "1.2", "1", "latest"], ["1.2.3", "1.2", "1", "latest"]),
    # a patch of an older line moves only its own minor tag
    ("v1.1.5", ["1.2.0", "1.2", "1", "latest", "1.1.4"], ["1.1.5", "1.1"]),
    # a new major behind a newer one: its major tag, not latest
    ("v1.9.0", ["2.0.0", "2", "latest"], ["1.9.0", "1.9", "1"]),
    # re-running the same release keeps every tag
    ("v2.0.0", ["2.0.0", "2.0", "2", "latest"], ["2.0.0", "2.0", "2", "latest"]),
    # prereleases of a higher version do not hold latest back
    ("v1.0.0", ["2.0.0-rc.1", "abc", "main"], ["1.0.0", "1.0", "1", "latest"]),
    # a prerelease gets only its full version
    ("v2.0.0-rc.1", ["1.0.0", "latest"], ["2.0.0-rc.1"]),
    ("v3.0.0-beta.2+exp.sha.5114f85", [], ["3.0.0-beta.2_exp.sha.5114f85"]),
])
def test_semver_tags(git_tag, existing, expected):
    assert semver_tags(git_tag, existing) == expected


@pytest.mark.parametrize("bad", ["release-1", "v1.2", "1.02.3", "v1.2.3.4", ""])
def test_semver_rejects_what_is_not_a_version(bad):
    with pytest.raises(ValueError, match="not a semantic version"):
        semver_tags(bad, [])


def test_schemes_combine_in_order_without_duplicates():
    assert scheme_tags(["sha", "ref", "sha"], commit_sha=SHA, ref_slug="main",
                       git_tag=None) == [SHA[:8], SHA, "main"]


@pytest.mark.parametrize(("schemes", "kwargs", "names"), [
    (["sha"], {"commit_sha": None, "ref_slug": "main", "git_tag": None}, "CI_COMMIT_SHA"),
    (["ref"], {"commit_sha": SHA, "ref_slug": None, "git_tag": None}, "CI_COMMIT_REF_SLUG"),
    (["semver"], {"commit_sha": SHA, "ref_slug": "main", "git_tag": None}, "CI_COMMIT_TAG"),
    (["sha"], {"commit_sha": "not-a-sha", "ref_slug": None, "git_tag": None}, "not a commit"),
    (["ref"], {"commit_sha": None, "ref_slug": "Feature/X", "git_tag": None}, "not a valid tag"),
    (["calver"], {"commit_sha": SHA, "ref_slug": None, "git_tag": None}, "unknown scheme"),
])
def test_missing_or_bad_inputs_name_the_variable(schemes, kwargs, names):
    with pytest.raises(ValueError, match=names):
        scheme_tags(schemes, **kwargs)


def test_only_a_semver_release_needs_the_repository_tags():
    assert needs_existing_tags(["semver"], "v1.0.0")
    assert not needs_existing_tags(["semver"], "v1.0.0-rc.1")
    assert not needs_existing_tags(["sha", "ref"], "v1.0.0")


def test_parse_version():
    assert parse_version("v10.20.30").core == "10.20.30"
    assert parse_version("1.0.0-alpha").prerelease == "alpha"
    assert parse_version("latest") is None
