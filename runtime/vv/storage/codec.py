"""Value checks and the text encoding of values in Redis and PostgreSQL.

Values are encoded as JSON text with ``json.dumps``. That encoding keeps the
type of every value that JSON can express, so None, "", "None", 0 and False
all stay distinct. Floats are written with ``float.__repr__``, the shortest
text that parses back to the same bits. -0.0, inf and -inf round-trip too,
and NaN comes back as NaN. Control characters are escaped, and text outside
the Basic Multilingual Plane is written as UTF-8.

Values that JSON would change are rejected before anything is written:
bytes, tuples, sets, dict keys that are not text, text containing U+0000
(PostgreSQL text cannot store it) or lone surrogates (they have no UTF-8
form).
"""

from __future__ import annotations

import json
from typing import Any

from vv._errors import InvalidRequest

__all__ = ["check_bigint", "check_json_value", "check_text", "decode_value", "encode_value"]

_BIGINT_MIN = -(2**63)
_BIGINT_MAX = 2**63 - 1
_SCALARS = (type(None), bool, int, float)


def encode_value(value: Any) -> str:
    """Return the JSON text of a checked value."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def decode_value(text: str | bytes) -> Any:
    """Return the value that ``encode_value`` wrote as ``text``."""
    return json.loads(text)


def check_text(value: str, name: str) -> str:
    """Return ``value`` if PostgreSQL text and UTF-8 can hold it; else raise InvalidRequest."""
    if "\x00" in value:
        raise InvalidRequest(f"invalid value for {name}: text contains U+0000, which PostgreSQL text cannot store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"invalid value for {name}: text contains a lone surrogate at index {exc.start}, which has no UTF-8 form"
        ) from exc
    return value


def check_bigint(value: int, name: str) -> int:
    """Return ``value`` if it fits a PostgreSQL bigint; else raise InvalidRequest."""
    if not _BIGINT_MIN <= value <= _BIGINT_MAX:
        raise InvalidRequest(f"invalid value for {name}: {value} does not fit in 64 bits")
    return value


def check_json_value(value: Any, name: str) -> Any:
    """Return ``value`` if it comes back from JSON equal and of the same type; else raise InvalidRequest."""
    if isinstance(value, _SCALARS) and type(value) in _SCALARS:
        return value
    if type(value) is str:
        check_text_in_json(value, name)
        return value
    if type(value) is list:
        for index, item in enumerate(value):
            check_json_value(item, f"{name}[{index}]")
        return value
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidRequest(f"invalid value for {name}: dict key {key!r} is not text, and JSON keys are text")
            check_text_in_json(key, name)
            check_json_value(item, f"{name}[{key!r}]")
        return value
    raise InvalidRequest(
        f"invalid value for {name}: {type(value).__name__} is not stored; "
        "use None, bool, int, float, str, list or dict (encode bytes as base64 text)"
    )


def check_text_in_json(value: str, name: str) -> None:
    """Raise InvalidRequest for text that has no UTF-8 form; JSON escapes U+0000."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"invalid value for {name}: text contains a lone surrogate at index {exc.start}, which has no UTF-8 form"
        ) from exc
