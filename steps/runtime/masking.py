"""Secrets never reach a log: known values, and their encoded forms, become [MASKED].

`SecretNames` says which variables hold secrets whatever step runs (the CLI masks their
values; the template redacts what they fill in): the common names, and the names or patterns a
project adds in CD_SECRET_VARIABLES. `redact_value` finds secrets by their form (a URL's
password, JSON credentials, a private key) whatever their variable is called.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import TextIO

REDACTED = "[REDACTED]"
EXTRA_NAMES_VARIABLE = "CD_SECRET_VARIABLES"
_SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|(^|_)PASS|PASSPHRASE|TOKEN|SECRET|(^|_)AUTH|AUTH_CONFIG|CREDENTIALS?"
    r"|(^|_)DSN|CONNECTION_STRING|COOKIE"
    r"|(^|_)(SECRET|PRIVATE|API|SIGNING|ACCESS|ENCRYPTION|MASTER|LICENSE|SSH|DEPLOY|CLIENT|APP"
    r"|JWT|HMAC|SESSION)_?KEY)(_JSON|_B64|_BASE64)?$")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/:@\s]*:)(?P<password>[^@\s/]+)@")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_CREDENTIAL_FIELD = re.compile(r"(?i)(password|passwd|secret|token|private_key|api_?key|"
                               r"credential)")


def is_secret_name(name: str) -> bool:
    """Whether a variable's name says its value is a secret (`*_PASSWORD`, `*_TOKEN`, ...)."""
    return _SECRET_NAME.search(name) is not None


class SecretNames:
    """Which variable names hold secrets: the common names and the project's own."""

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self.extra = tuple(extra)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SecretNames:
        """The common names plus CD_SECRET_VARIABLES (names or patterns: `*_CERT,LDAP_BIND`)."""
        given = environ.get(EXTRA_NAMES_VARIABLE, "")
        return cls([n.strip() for n in re.split(r"[,\s]+", given) if n.strip()])

    def __call__(self, name: str) -> bool:
        return is_secret_name(name) or any(fnmatchcase(name, p) for p in self.extra)

    def values(self, environ: Mapping[str, str]) -> frozenset[str]:
        """The values of the secret variables (long enough to be told from ordinary text)."""
        return frozenset(v for k, v in environ.items()
                         if self(k) and len(v) >= Masker.MIN_LENGTH)


def redact_value(text: str) -> str:
    """`text` with the secrets its form gives away redacted: a URL's password
    (`postgres://app:[REDACTED]@db/app`); JSON holding credentials and private keys whole."""
    if _PRIVATE_KEY.search(text) or _is_json_credentials(text):
        return REDACTED
    return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED + "@", text)


def _is_json_credentials(text: str) -> bool:
    stripped = text.strip()
    if not stripped.startswith("{"):
        return False
    try:
        data = json.loads(stripped)
    except ValueError:
        return False
    return isinstance(data, dict) and any(_CREDENTIAL_FIELD.search(str(k)) for k in data)


class Masker:
    """Replaces every known secret in a text with [MASKED]."""

    MIN_LENGTH = 4

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *secrets: str | None) -> None:
        """Mask these values, and their base64 and URL-encoded forms (auth headers carry those)."""
        import base64
        from urllib.parse import quote

        for secret in secrets:
            if not secret or len(secret) < self.MIN_LENGTH:
                continue
            self._secrets.update({secret, quote(secret, safe=""),
                                  base64.b64encode(secret.encode()).decode()})
        if self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_basic_auth(self, user: str, password: str) -> None:
        """Mask the `user:password` pair as a basic auth header would carry it."""
        if password:
            self.add(password, f"{user}:{password}")

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub("[MASKED]", text)


class MaskingStream:
    """A text stream that masks secrets before they reach the underlying stream."""

    def __init__(self, stream: TextIO, masker: Masker) -> None:
        self._stream = stream
        self._masker = masker

    def write(self, text: str) -> int:
        self._stream.write(self._masker(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", "utf-8")
