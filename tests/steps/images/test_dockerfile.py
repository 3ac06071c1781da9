"""One LABEL instruction for the build's labels: where it goes, how values are quoted, and the
Dockerfiles left to the engine's own labelling."""

import pytest

from steps.images.dockerfile import with_labels

LABELS = {"org.opencontainers.image.revision": "abc", "team": "web"}


def test_the_labels_close_the_last_stage_in_one_instruction():
    text = "FROM scratch\nCOPY a /a\n"
    assert with_labels(text, LABELS, None) == (
        'FROM scratch\nCOPY a /a\nLABEL "org.opencontainers.image.revision"="abc" '
        '"team"="web"\n')


def test_with_a_target_the_labels_close_that_stage():
    text = ("FROM scratch AS base\nRUN a \\\n  FROM-not-an-instruction\n# FROM a comment\n"
            "FROM --platform=linux/amd64 base AS final\nRUN b\n")
    lines = with_labels(text, {"k": "v"}, "BASE").splitlines()
    assert lines[4] == 'LABEL "k"="v"' and lines[5].startswith("FROM --platform")
    assert with_labels(text, {"k": "v"}, "final").splitlines()[-1] == 'LABEL "k"="v"'


def test_values_are_taken_literally():
    text = with_labels("FROM scratch\n", {"title": 'say "hi" for $5 \\o/'}, None)
    assert text.splitlines()[-1] == r'LABEL "title"="say \"hi\" for \$5 \\o/"'


@pytest.mark.parametrize(("text", "labels", "target"), [
    ("# escape=`\nFROM scratch\n", LABELS, None),  # another escape character
    ("FROM scratch\n", {"note": "two\nlines"}, None),
    ("FROM scratch AS base\n", LABELS, "missing"),
    ("FROM scratch\n", {}, None),
], ids=["escape-directive", "multi-line-value", "no-such-stage", "no-labels"])
def test_what_it_cannot_write_is_left_to_the_engine(text, labels, target):
    assert with_labels(text, labels, target) is None
