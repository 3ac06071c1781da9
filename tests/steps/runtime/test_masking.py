"""Secrets never reach a log."""

import base64

import pytest

from steps.runtime.masking import Masker, is_secret_name


def test_masker_hides_secret_and_its_encoded_forms():
    masker = Masker()
    masker.add_basic_auth("user", "p@ss word!")
    text = ("pw=p@ss word! url=p%40ss%20word%21 "
            f"header=Basic {base64.b64encode(b'user:p@ss word!').decode()}")
    masked = masker(text)
    assert "p@ss" not in masked and "p%40ss" not in masked
    assert "dXNlcjpwQHNz" not in masked
    assert masked.count("[MASKED]") == 3


@pytest.mark.parametrize(("name", "secret"), [
    ("CI_REGISTRY_PASSWORD", True), ("CD_SERVICE_TOKEN", True), ("DOCKER_AUTH_CONFIG", True),
    ("DB_SECRET", True), ("CI_REGISTRY_USER", False), ("TOKEN_URL", False),
])
def test_variables_named_as_secrets_are_secrets(name, secret):
    assert is_secret_name(name) is secret
