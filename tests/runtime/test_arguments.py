"""RPC arguments checked against their parameters' JSON type annotations, on real Redis."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Optional

import aiohttp
import pytest

from vv import InvalidRequest, Service, rpc
from vv.gateway import Gateway
from vv.testing import run_service

HTTP = "GET"


class Typed(Service):
    """One method per annotation; each returns its argument and the name of its Python type."""

    @rpc(http=[HTTP])
    async def integer(self, value: int) -> list:
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def number(self, value: float) -> list:
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def text(self, value: str) -> list:
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def flag(self, value: bool) -> list:
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def mapping(self, value: dict[str, Any]) -> list:
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def array(self, value: list[int]) -> list:
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def maybe(self, value: int | None) -> list:
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def optional(self, value: Optional[bool]) -> list:  # noqa: UP007 - the typing spelling is under test
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def either(self, value: int | str) -> list:
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def defaulted(self, value: int = None) -> list:  # noqa: RUF013 - implicit Optional is under test
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def unannotated(self, value) -> list:  # noqa: ANN001 - a missing annotation is under test
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def anything(self, value: Any) -> list:
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def instance(self, value: Fraction) -> list:
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def unresolved(self, value: NotDefinedAnywhere, count: int) -> list:  # noqa: F821 - unresolvable on purpose
        return [value, type(value).__name__]

    @rpc(http=[HTTP])
    async def many(self, *values: int, **flags: bool) -> list:
        return [list(values), flags]

    @rpc
    async def brew(self, kind: str, cups: int) -> dict:
        return {"kind": kind, "cups": cups}


# (method, value sent, value and type name the handler receives), for calls from services and from HTTP alike.
ACCEPTED = [
    ("integer", 3, [3, "int"]),
    ("integer", -3, [-3, "int"]),
    ("integer", 3.0, [3, "int"]),
    ("number", 2.5, [2.5, "float"]),
    ("number", 2, [2, "int"]),
    ("text", "latte", ["latte", "str"]),
    ("flag", True, [True, "bool"]),
    ("flag", False, [False, "bool"]),
    ("mapping", {"a": 1}, [{"a": 1}, "dict"]),
    ("array", [1, "x"], [[1, "x"], "list"]),
    ("maybe", None, [None, "NoneType"]),
    ("maybe", 4, [4, "int"]),
    ("optional", None, [None, "NoneType"]),
    ("optional", True, [True, "bool"]),
    ("either", 5, [5, "int"]),
    ("either", "five", ["five", "str"]),
    ("defaulted", None, [None, "NoneType"]),
    ("unannotated", "anything", ["anything", "str"]),
    ("anything", [1], [[1], "list"]),
    ("instance", "1/3", ["1/3", "str"]),
]

# (method, value sent, expected type in the error text), rejected from services and from HTTP alike.
REJECTED = [
    ("integer", True, "an integer"),
    ("integer", False, "an integer"),
    ("integer", 2.5, "an integer"),
    ("integer", None, "an integer"),
    ("integer", [3], "an integer"),
    ("number", True, "a number"),
    ("number", "fast", "a number"),
    ("text", 7, "a string"),
    ("text", None, "a string"),
    ("flag", 1, "a boolean"),
    ("flag", "yes", "a boolean"),
    ("mapping", [1], "an object"),
    ("array", {"a": 1}, "an array"),
    ("array", "1,2", "an array"),
    ("maybe", "many", "an integer or null"),
    ("maybe", False, "an integer or null"),
    ("optional", 0, "a boolean or null"),
    ("either", 1.5, "an integer or a string"),
    ("defaulted", "x", "an integer or null"),
]

# Text that only HTTP requests may use for numbers and booleans: (method, text, what the handler receives).
HTTP_TEXT = [
    ("integer", "3", [3, "int"]),
    ("integer", "-12", [-12, "int"]),
    ("number", "2.5", [2.5, "float"]),
    ("number", "7", [7.0, "float"]),
    ("number", "1e3", [1000.0, "float"]),
    ("flag", "true", [True, "bool"]),
    ("flag", "false", [False, "bool"]),
    ("maybe", "8", [8, "int"]),
    ("optional", "false", [False, "bool"]),
    ("either", "5", ["5", "str"]),
]

# Text that HTTP requests may not use either: (method, text).
HTTP_TEXT_REJECTED = [
    ("integer", "3.0"),
    ("integer", " 3"),
    ("integer", "1_000"),
    ("integer", "٣"),
    ("number", "nan"),
    ("number", "inf"),
    ("number", "1e999"),
    ("flag", "True"),
    ("flag", "1"),
]


@pytest.fixture
async def typed(redis_url, app_name):
    async with run_service(Typed, app=app_name, transport=redis_url) as svc:
        yield svc


async def call_over_http(svc, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call as the gateway does: with http_method set."""
    return await svc.client.call(svc.service.service_id, method, args=list(args), kwargs=kwargs, http_method=HTTP)


@pytest.mark.parametrize(("method", "value", "received"), ACCEPTED)
async def test_accepted_argument(typed, method, value, received):
    assert await typed.call(method, value=value) == received
    assert await typed.call(method, value) == received
    assert await call_over_http(typed, method, value=value) == received


@pytest.mark.parametrize(("method", "value", "expected"), REJECTED)
async def test_rejected_argument(typed, method, value, expected):
    text = f"invalid argument value={value!r} for {typed.service.service_id}.{method}: expected {expected}"

    with pytest.raises(InvalidRequest) as by_name:
        await typed.call(method, value=value)
    with pytest.raises(InvalidRequest) as by_position:
        await typed.call(method, value)
    with pytest.raises(InvalidRequest) as over_http:
        await call_over_http(typed, method, value=value)

    assert str(by_name.value) == text
    assert str(by_position.value) == text
    assert str(over_http.value) == text
    assert by_name.value.code == 400


@pytest.mark.parametrize(("method", "text", "received"), HTTP_TEXT)
async def test_text_converted_over_http(typed, method, text, received):
    assert await call_over_http(typed, method, value=text) == received
    assert await call_over_http(typed, method, text) == received


@pytest.mark.parametrize(("method", "text"), [(method, text) for method, text, _ in HTTP_TEXT if method != "either"])
async def test_text_rejected_outside_http(typed, method, text):
    with pytest.raises(InvalidRequest, match=f"invalid argument value={text!r} for .*: expected "):
        await typed.call(method, value=text)


@pytest.mark.parametrize(("method", "text"), HTTP_TEXT_REJECTED)
async def test_malformed_text_rejected_over_http(typed, method, text):
    with pytest.raises(InvalidRequest, match="invalid argument value="):
        await call_over_http(typed, method, value=text)


async def test_brew_with_word_for_number(typed):
    with pytest.raises(InvalidRequest) as caught:
        await typed.call("brew", kind="latte", cups="two")

    assert str(caught.value) == f"invalid argument cups='two' for {typed.service.service_id}.brew: expected an integer"


async def test_long_value_truncated_in_error(typed):
    with pytest.raises(InvalidRequest) as caught:
        await typed.call("integer", value="x" * 500)

    quoted = str(caught.value).removeprefix("invalid argument value=").split(" for ")[0]
    assert quoted == repr("x" * 500)[:57] + "..."


async def test_unresolved_annotation_leaves_others_checked(typed):
    assert await typed.call("unresolved", value="free", count=2) == ["free", "str"]
    with pytest.raises(InvalidRequest, match="invalid argument count='2' .*: expected an integer"):
        await typed.call("unresolved", value="free", count="2")


async def test_variadic_items_checked(typed):
    assert await typed.call("many", 1, 2, fast=True) == [[1, 2], {"fast": True}]
    assert await call_over_http(typed, "many", "1", "2", fast="false") == [[1, 2], {"fast": False}]
    with pytest.raises(InvalidRequest, match=r"invalid argument values\[1\]=2.5 .*: expected an integer"):
        await typed.call("many", 1, 2.5)
    with pytest.raises(InvalidRequest, match="invalid argument fast='yes' .*: expected a boolean"):
        await typed.call("many", fast="yes")


async def test_missing_argument_still_named(typed):
    with pytest.raises(InvalidRequest, match="missing a required argument: 'cups'"):
        await typed.call("brew", kind="latte")


class Api(Gateway):
    pass


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        return response.status, await response.json(content_type=None)


async def test_query_text_converted_by_gateway(redis_url, app_name, monkeypatch):
    monkeypatch.setenv("HTTP_PORT", "0")
    monkeypatch.setenv("HTTP_HOST", "127.0.0.1")
    async with (
        run_service(Typed, app=app_name, transport=redis_url),
        run_service(Api, app=app_name, transport=redis_url) as api,
        aiohttp.ClientSession() as session,
    ):
        url = f"http://127.0.0.1:{api.service.http_port}/typed"
        accepted = await fetch(session, url + "/integer?value=3")
        from_path = await fetch(session, url + "/integer/4")
        rejected = await fetch(session, url + "/integer?value=two")

    assert accepted == (200, {"response": [3, "int"]})
    assert from_path == (200, {"response": [4, "int"]})
    assert rejected == (400, {
        "error_code": 400,
        "error_text": f"invalid argument value='two' for {app_name}.typed.integer: expected an integer",
    })
