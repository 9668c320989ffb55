"""The HTTP gateway in front of a small service, on real Redis and a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from vv import NotFound, Service, rpc
from vv.gateway import Gateway
from vv.testing import run_service


class Echo(Service):
    """Echoes its arguments; one method is slow, one internal, one fails."""

    @rpc(http=["GET", "POST", "PUT"])
    async def request(self, *args, **kwargs) -> dict:
        return {"args": list(args), "kwargs": kwargs}

    @rpc(http=["GET"])
    async def slow_reply(self, delay_s: str = "5") -> dict:
        await asyncio.sleep(float(delay_s))
        return {"slept_s": float(delay_s)}

    @rpc(http=["DELETE"])
    async def missing(self, record_id: int) -> None:
        raise NotFound(f"record {record_id} not found")

    @rpc(http=["GET"])
    async def broken(self) -> None:
        raise RuntimeError("disk on fire")

    @rpc
    async def internal(self) -> str:
        return "secret"


class Api(Gateway):
    pass


@pytest.fixture
async def gateway(app_name, redis_url, monkeypatch) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    monkeypatch.setenv("HTTP_PORT", "0")
    monkeypatch.setenv("HTTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HTTP_TIMEOUT_S", "0.5")
    async with (
        run_service(Echo, app=app_name, transport=redis_url),
        run_service(Api, app=app_name, transport=redis_url) as api,
        aiohttp.ClientSession() as session,
    ):
        yield f"http://127.0.0.1:{api.service.http_port}", session


async def fetch(session, method, url, **options):
    async with session.request(method, url, **options) as response:
        return response.status, await response.json(content_type=None)


async def test_positional_query_and_body_arguments(gateway):
    url, session = gateway

    status, body = await fetch(session, "POST", url + "/echo/7/12?color=red&tag=a&tag=b", json={"size": 3, "extra": None})

    assert status == 200
    assert body == {"response": {"args": [7, 12], "kwargs": {"color": "red", "tag": ["a", "b"], "size": 3, "extra": None}}}


async def test_same_name_in_query_and_body_rejected(gateway):
    url, session = gateway

    status, body = await fetch(session, "PUT", url + "/echo?size=2", json={"size": 3})

    assert status == 400
    assert body["error_text"] == "argument given both in the query and in the JSON body: size; send it once"


async def test_json_body_must_be_object(gateway):
    url, session = gateway

    status, body = await fetch(session, "PUT", url + "/echo", json=[1, 2])

    assert status == 400
    assert body == {"error_code": 400, "error_text": "invalid JSON body: expected an object, got array"}


async def test_invalid_json_names_parse_error(gateway):
    url, session = gateway

    status, body = await fetch(session, "PUT", url + "/echo", data=b"{not json}")

    assert status == 400
    assert body["error_text"] == "invalid JSON body: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"


async def test_rpc_timeout_is_504(gateway):
    url, session = gateway

    status, body = await fetch(session, "GET", url + "/echo/slow/reply?delay_s=3")

    assert status == 504
    assert body["error_code"] == 504
    assert ".echo.slow_reply before its deadline" in body["error_text"]


async def test_fast_reply_within_timeout(gateway):
    url, session = gateway

    status, body = await fetch(session, "GET", url + "/echo/slow/reply?delay_s=0.01")

    assert status == 200
    assert body == {"response": {"slept_s": 0.01}}


async def test_handler_error_code_travels(gateway):
    url, session = gateway

    status, body = await fetch(session, "DELETE", url + "/echo/missing/5")

    assert status == 404
    assert body == {"error_code": 404, "error_text": "record 5 not found"}


async def test_handler_crash_is_500(gateway):
    url, session = gateway

    status, body = await fetch(session, "GET", url + "/echo/broken")

    assert status == 500
    assert "RuntimeError: disk on fire" in body["error_text"]


async def test_internal_method_hidden(gateway):
    url, session = gateway

    status, body = await fetch(session, "GET", url + "/echo/internal")

    assert status == 404
    assert body == {"error_code": 404, "error_text": "no HTTP endpoint GET /echo/internal"}


async def test_absent_method_names_route(gateway):
    url, session = gateway

    status, body = await fetch(session, "POST", url + "/echo/absent/3")

    assert status == 404
    assert body == {"error_code": 404, "error_text": "no HTTP endpoint POST /echo/absent/3"}


async def test_builtin_health_hidden(gateway):
    url, session = gateway

    status, body = await fetch(session, "GET", url + "/echo/health")

    assert status == 404
    assert body == {"error_code": 404, "error_text": "no HTTP endpoint GET /echo/health"}


async def test_method_not_allowed_names_accepted(gateway):
    url, session = gateway

    status, body = await fetch(session, "PATCH", url + "/echo")

    assert status == 405
    assert body["error_text"].endswith("use GET, POST, PUT")


async def test_unknown_service_answers_at_once(gateway):
    url, session = gateway

    status, body = await fetch(session, "GET", url + "/nobody/home")

    assert status == 404
    assert body["error_text"].startswith("unknown service 'nobody'")


async def test_body_too_large_is_413(gateway):
    url, session = gateway

    status, body = await fetch(session, "PUT", url + "/echo", data=b'{"a": "' + b"x" * (2 * 1024 * 1024) + b'"}')

    assert status == 413
    assert body["error_text"].startswith("request body too large")


async def test_health_lists_services(gateway):
    url, session = gateway

    status, body = await fetch(session, "GET", url + "/health")

    assert status == 200
    assert list(body["response"]["services"]) == ["echo"]
    assert body["response"]["services"]["echo"]["status"] == "ok"


async def test_health_503_when_service_stopped(app_name, redis_url, monkeypatch):
    monkeypatch.setenv("HTTP_PORT", "0")
    monkeypatch.setenv("HTTP_HOST", "127.0.0.1")
    async with run_service(Api, app=app_name, transport=redis_url) as api, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{api.service.http_port}"
        async with run_service(Echo, app=app_name, transport=redis_url):
            up_status, _ = await fetch(session, "GET", url + "/health")

        status, body = await fetch(session, "GET", url + "/health")

    assert up_status == 200
    assert status == 503
    assert body["error_code"] == 503
    assert body["error_text"].startswith("unhealthy: echo (504: no reply from")


async def test_redis_down_is_503(app_name, redis_server_factory, monkeypatch):
    monkeypatch.setenv("HTTP_PORT", "0")
    monkeypatch.setenv("HTTP_HOST", "127.0.0.1")
    server = redis_server_factory()
    async with (
        run_service(Echo, app=app_name, transport=server.url),
        run_service(Api, app=app_name, transport=server.url) as api,
        aiohttp.ClientSession() as session,
    ):
        url = f"http://127.0.0.1:{api.service.http_port}"
        up_status, _ = await fetch(session, "GET", url + "/echo")
        server.stop()

        status, body = await fetch(session, "GET", url + "/echo")
        health_status, health = await fetch(session, "GET", url + "/health")
        server.start()

    assert up_status == 200
    assert status == 503
    assert body["error_text"].startswith("service unavailable: ")
    assert health_status == 503
    assert health["error_text"].startswith("service unavailable: ")
