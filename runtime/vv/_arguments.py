"""Check RPC arguments against the JSON types that a handler's parameters are annotated with.

Only annotations that name JSON types are checked: ``int``, ``float``,
``str``, ``bool``, ``dict``, ``list`` (with or without type parameters, whose
items are not checked), ``None`` and unions of these, such as ``int | None``
or ``Optional[str]``. Any other annotation (a class, ``Any``, ``object``, an
unresolvable string) leaves its parameter unchecked, and so does a missing
annotation.

Requests from the HTTP gateway carry query values as text, so for them the
text forms of integers, numbers and booleans are accepted and converted.
"""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vv._errors import InvalidRequest

__all__ = ["ArgumentChecker"]

# Maximum length of the repr of a rejected value quoted in an error message.
_MAX_VALUE_CHARS = 60

_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_NUMBER_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_BOOLEAN_TEXT = {"true": True, "false": False}

# Returned by a converter that cannot turn a value into its type.
_MISMATCH = object()

Converter = Callable[[Any, bool], Any]


def _convert_integer(value: Any, from_text: bool) -> Any:
    """Turn an integral float (3.0 from JSON) or, over HTTP, decimal digits into an int."""
    if type(value) is float and value.is_integer():
        return int(value)
    if from_text and type(value) is str and _INTEGER_TEXT.fullmatch(value):
        try:
            return int(value)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            return _MISMATCH
    return _MISMATCH


def _convert_number(value: Any, from_text: bool) -> Any:
    if from_text and type(value) is str and _NUMBER_TEXT.fullmatch(value):
        number = float(value)
        return number if math.isfinite(number) else _MISMATCH
    return _MISMATCH


def _convert_boolean(value: Any, from_text: bool) -> Any:
    if from_text and type(value) is str:
        return _BOOLEAN_TEXT.get(value, _MISMATCH)
    return _MISMATCH


@dataclass(frozen=True)
class _JsonType:
    """One JSON type: the Python types decoded JSON gives for it and how other values convert to it."""

    description: str
    exact: frozenset[type]
    converter: Converter | None = None


# Decoded JSON contains only these exact types, so a type() lookup suffices and
# keeps bool (a subclass of int) out of int and float.
_JSON_TYPES: dict[Any, _JsonType] = {
    int: _JsonType("an integer", frozenset({int}), _convert_integer),
    float: _JsonType("a number", frozenset({int, float}), _convert_number),
    str: _JsonType("a string", frozenset({str})),
    bool: _JsonType("a boolean", frozenset({bool}), _convert_boolean),
    dict: _JsonType("an object", frozenset({dict})),
    list: _JsonType("an array", frozenset({list})),
    type(None): _JsonType("null", frozenset({type(None)})),
}


@dataclass(frozen=True)
class _Expectation:
    """The JSON types one parameter accepts."""

    description: str
    exact: frozenset[type]
    converters: tuple[Converter, ...]

    def convert(self, value: Any, from_text: bool) -> Any:
        """Return ``value``, converted when needed, or ``_MISMATCH``.

        A value of an accepted type is kept as it is before any conversion is
        tried, so ``"3"`` stays a string for ``int | str``.
        """
        if type(value) in self.exact:
            return value
        for converter in self.converters:
            converted = converter(value, from_text)
            if converted is not _MISMATCH:
                return converted
        return _MISMATCH


def _expectation(annotation: Any, default: Any) -> _Expectation | None:
    """Build the expectation for an annotation, or None when it names anything but JSON types.

    A default of None also admits None, as it did for ``x: int = None``
    before PEP 484 dropped implicit Optional.
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = list(typing.get_args(annotation))
    else:
        members = [annotation]
    if default is None and type(None) not in members:
        members.append(type(None))

    json_types: list[_JsonType] = []
    for member in members:
        json_type = _json_type(member)
        if json_type is None:
            return None
        json_types.append(json_type)

    return _Expectation(
        description=_join_alternatives([json_type.description for json_type in json_types]),
        exact=frozenset().union(*(json_type.exact for json_type in json_types)),
        converters=tuple(json_type.converter for json_type in json_types if json_type.converter is not None),
    )


def _json_type(annotation: Any) -> _JsonType | None:
    """Return the JSON type an annotation names; ``dict[str, int]`` names an object, whatever its items."""
    if annotation is None:
        annotation = type(None)
    origin = typing.get_origin(annotation)
    if origin is dict or origin is list:
        annotation = origin
    try:
        return _JSON_TYPES.get(annotation)
    except TypeError:  # an unhashable annotation object names no JSON type
        return None


def _join_alternatives(descriptions: list[str]) -> str:
    unique = list(dict.fromkeys(descriptions))
    if len(unique) == 1:
        return unique[0]
    return f"{', '.join(unique[:-1])} or {unique[-1]}"


def _type_hints(function: Callable[..., Any], signature: inspect.Signature) -> dict[str, Any]:
    """Resolve the parameter annotations of ``function``, string ones included.

    When ``typing.get_type_hints`` fails because one annotation names
    something undefined, each string annotation is evaluated on its own and
    the ones that fail are skipped.
    """
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - any failure only means "resolve one by one"
        pass

    namespace = getattr(inspect.unwrap(function), "__globals__", {})
    hints: dict[str, Any] = {}
    for name, parameter in signature.parameters.items():
        annotation = parameter.annotation
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # noqa: S307 - the handler's own annotation source
            except Exception:  # noqa: BLE001 - an annotation that cannot be resolved is not checked
                continue
        if annotation is not inspect.Parameter.empty:
            hints[name] = annotation
    return hints


def _quote(value: Any) -> str:
    text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


class ArgumentChecker:
    """Bind a request's arguments to one handler's signature and check their annotated JSON types.

    Build one per handler and reuse it: the annotations are resolved here
    once, so each call costs a signature bind plus one type lookup per
    checked argument.
    """

    def __init__(self, function: Callable[..., Any], rpc_name: str) -> None:
        self.rpc_name = rpc_name
        self.signature = inspect.signature(function)
        hints = _type_hints(function, self.signature)
        self.checks: tuple[tuple[str, Any, _Expectation], ...] = tuple(
            (name, parameter.kind, expectation)
            for name, parameter in self.signature.parameters.items()
            if name in hints and (expectation := _expectation(hints[name], parameter.default)) is not None
        )

    def bind(self, args: list[Any], kwargs: dict[str, Any], *, from_text: bool) -> inspect.BoundArguments:
        """Bind ``args`` and ``kwargs``, converting text values when ``from_text`` (an HTTP request).

        Raise ``InvalidRequest`` for a missing or unexpected argument, and
        for an argument whose value its annotation does not accept.
        """
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidRequest(f"invalid arguments for {self.rpc_name}: {exc}") from None

        arguments = bound.arguments
        for name, kind, expectation in self.checks:
            if name not in arguments:
                continue
            if kind is inspect.Parameter.VAR_POSITIONAL:
                arguments[name] = tuple(
                    self._convert(f"{name}[{index}]", item, expectation, from_text)
                    for index, item in enumerate(arguments[name])
                )
            elif kind is inspect.Parameter.VAR_KEYWORD:
                arguments[name] = {
                    key: self._convert(key, item, expectation, from_text) for key, item in arguments[name].items()
                }
            else:
                arguments[name] = self._convert(name, arguments[name], expectation, from_text)
        return bound

    def _convert(self, name: str, value: Any, expectation: _Expectation, from_text: bool) -> Any:
        converted = expectation.convert(value, from_text)
        if converted is _MISMATCH:
            raise InvalidRequest(
                f"invalid argument {name}={_quote(value)} for {self.rpc_name}: expected {expectation.description}"
            )
        return converted
