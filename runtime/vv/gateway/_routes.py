"""Map an HTTP request onto the RPC it names.

A path ``/<service>/<word>/<word>/<number>/...`` names the component
``<service>`` of the gateway's app and the method made of the alphabetic
segments joined with ``_`` (``request`` when there are none). Numeric
segments become positional arguments in the order they appear. Query
parameters and the members of a JSON object body become keyword arguments.

These functions do no I/O: the server module reads the request and hands
them strings, so every rule here is testable without a socket.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vv._errors import InvalidRequest, NotFound

__all__ = ["DEFAULT_METHOD", "Route", "merge_kwargs", "parse_body", "parse_path", "parse_query"]

DEFAULT_METHOD = "request"

# A component name is a DNS label: lowercase letters, digits and '-',
# starting with a letter, not ending with '-', at most 63 characters.
_SERVICE = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_WORD = re.compile(r"[A-Za-z]+")
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Route:
    """The RPC that one HTTP request names."""

    service: str
    method: str
    args: list[int] = field(default_factory=list)


def parse_path(path: str) -> Route:
    """Split a URL path into service, method and positional arguments.

    Raise ``NotFound`` for a path that cannot name a reachable method: an
    empty path, a service that is not a component name, or a segment that is
    neither alphabetic nor numeric. Method names therefore never start with
    ``_``, so internal RPCs such as ``_record_get`` cannot be addressed.
    """
    segments = [segment for segment in path.split("/") if segment]
    if not segments:
        raise NotFound("not found: the path names no service; use /<service>/<method>/<ids>")

    service, *rest = segments
    if not _SERVICE.fullmatch(service):
        raise NotFound(f"unknown service {service!r}")

    words: list[str] = []
    args: list[int] = []
    for segment in rest:
        if _WORD.fullmatch(segment):
            words.append(segment.lower())
        elif _NUMBER.fullmatch(segment):
            args.append(int(segment))
        else:
            raise NotFound(f"not found: path segment {segment!r} is neither a word nor a number")

    return Route(service=service, method="_".join(words) or DEFAULT_METHOD, args=args)


def parse_query(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn query pairs into keyword arguments; a repeated name becomes a list of its values."""
    kwargs: dict[str, Any] = {}
    for name, value in items:
        if name not in kwargs:
            kwargs[name] = value
        elif isinstance(kwargs[name], list):
            kwargs[name].append(value)
        else:
            kwargs[name] = [kwargs[name], value]
    return kwargs


def parse_body(body: bytes) -> dict[str, Any]:
    """Decode a JSON object body into keyword arguments; an empty body gives none.

    Raise ``InvalidRequest`` naming the parse error for text that is not
    JSON, and for JSON that is not an object, because only an object's
    members can become keyword arguments.
    """
    if not body.strip():
        return {}
    try:
        decoded = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"invalid JSON body: {exc}") from exc

    if not isinstance(decoded, dict):
        raise InvalidRequest(f"invalid JSON body: expected an object, got {_json_type(decoded)}")
    return decoded


def _json_type(value: Any) -> str:
    """Name the JSON type of a decoded value, as a client wrote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array"


def merge_kwargs(query: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Combine query and body arguments; a name given in both is rejected as ambiguous."""
    both = sorted(query.keys() & body.keys())
    if both:
        names = ", ".join(both)
        raise InvalidRequest(f"argument given both in the query and in the JSON body: {names}; send it once")
    return {**query, **body}
