"""What the API refuses before a view runs, so no input reaches the database unchecked.

- a URI longer than MAX_URI_BYTES: 414;
- a JSON body nested deeper than MAX_JSON_DEPTH: 400 (Python's parser would recurse until it
  fails); bodies over PROMOTION_MAX_BODY_BYTES are refused by Flask as they are read, chunked
  ones included: 413;
- an id in a path beyond the database's INTEGER (32 bits on PostgreSQL): 404, nothing has it.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, Request, request
from werkzeug.exceptions import BadRequest, RequestURITooLarge
from werkzeug.routing import IntegerConverter

MAX_URI_BYTES = 8192
MAX_JSON_DEPTH = 32
INT32_MAX = 2**31 - 1  # ids are INTEGER columns: 32-bit on PostgreSQL

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_NESTING = re.compile(rb"[\[\]{}]")


def json_depth(raw: bytes) -> int:
    """How deep a JSON text nests arrays and objects (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _JSON_NESTING.finditer(_JSON_STRING.sub(b"", raw)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class BoundedRequest(Request):
    """A request whose JSON body is checked for depth the first time anyone reads it."""

    _depth_checked = False

    def get_data(self, cache: bool = True, as_text: bool = False,  # type: ignore[override]
                 parse_form_data: bool = False) -> Any:
        data = super().get_data(cache, as_text, parse_form_data)
        if not self._depth_checked and self.is_json:
            self._depth_checked = True
            raw = data.encode() if isinstance(data, str) else data
            if json_depth(raw) > MAX_JSON_DEPTH:
                raise BadRequest(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
        return data


class IdConverter(IntegerConverter):
    """`<int:...>` in paths: a positive id that fits the database column."""

    def __init__(self, url_map: Any, fixed_digits: int = 0, min: int | None = 1,
                 max: int | None = INT32_MAX, signed: bool = False) -> None:
        super().__init__(url_map, fixed_digits, min, max, signed)


def init_app(app: Flask) -> None:
    """Install the checks; call before any blueprint is registered (paths use the converter)."""
    app.request_class = BoundedRequest
    app.url_map.converters["int"] = IdConverter
    app.before_request(_uri_length)


def _uri_length() -> None:
    environ = request.environ
    if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > MAX_URI_BYTES:
        raise RequestURITooLarge(f"the URI is longer than {MAX_URI_BYTES} bytes")
