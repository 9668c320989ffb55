"""RPC through a real Redis: results, error mapping, HTTP checks and deadlines."""

from __future__ import annotations

import asyncio

import pytest

from vv import (
    Client,
    ConfigError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RemoteError,
    RequestTimeout,
    Service,
    rpc,
)
from vv.testing import run_service


class Machine(Service):
    @rpc(http=["POST", "PUT"])
    async def request(self, name: str, caffeine: int = 10) -> dict:
        return {"name": name, "caffeine": caffeine}

    @rpc(http="GET")
    async def add(self, a: int, b: int) -> int:
        return a + b

    @rpc
    async def internal(self) -> str:
        return "internal"

    @rpc
    async def fail(self) -> None:
        raise ValueError("broken on purpose")

    @rpc
    async def missing(self, id: int) -> None:
        raise NotFound(f"no machine {id}")

    @rpc
    async def sleep(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @rpc
    async def relay(self, target: str, method: str, timeout: float, *args) -> object:
        return await self.call(target, method, *args, timeout=timeout)

    async def not_exposed(self) -> str:
        return "hidden"


async def test_call_returns_result(redis_url, app_name):
    async with run_service(Machine, app=app_name, transport=redis_url) as svc:
        assert await svc.call("request", name="M1", caffeine=40) == {"name": "M1", "caffeine": 40}
        assert await svc.call("add", 2, b=3) == 5


async def test_health_is_built_in(redis_url, app_name):
    async with run_service(Machine, app=app_name, transport=redis_url) as svc:
        health = await svc.call("health")

    assert health["status"] == "ok"
    assert health["service"] == f"{app_name}.machine"


async def test_client_calls_app_component(redis_url, app_name):
    async with run_service(Machine, app=app_name, transport=redis_url):
        async with Client(redis_url) as client:
            result = await client.call(f"{app_name}.machine", "request", kwargs={"name": "M2"}, args=[])
            by_slash = await client.call(f"{app_name}/machine", "add", args=[1, 1])

    assert result == {"name": "M2", "caffeine": 10}
    assert by_slash == 2


async def test_unknown_and_unmarked_methods_not_found(redis_url, app_name):
    async with run_service(Machine, app=app_name, transport=redis_url) as svc:
        with pytest.raises(NotFound, match="'nope'"):
            await svc.call("nope")
        with pytest.raises(NotFound, match="'not_exposed'"):
            await svc.call("not_exposed")


async def test_bad_arguments_name_the_argument(redis_url, app_name):
    async with run_service(Machine, app=app_name, transport=redis_url) as svc:
        with pytest.raises(InvalidRequest, match="'name'") as missing:
            await svc.call("request", caffeine=3)
        with pytest.raises(InvalidRequest, match="'colour'"):
            await svc.call("request", name="M1", colour="red")

    assert missing.value.code == 400


async def test_handler_error_is_500_and_service_survives(redis_url, app_name):
    async with run_service(Machine, app=app_name, transport=redis_url) as svc:
        with pytest.raises(RemoteError, match="ValueError: broken on purpose") as failed:
            await svc.call("fail")
        with pytest.raises(NotFound, match="no machine 7"):
            await svc.call("missing", 7)
        assert await svc.call("add", 1, 2) == 3

    assert failed.value.code == 500


async def test_http_method_checks(redis_url, app_name):
    async with run_service(Machine, app=app_name, transport=redis_url) as svc:
        target = f"{app_name}.machine"
        put = await svc.client.call(target, "request", kwargs={"name": "M1"}, http_method="PUT")
        with pytest.raises(MethodNotAllowed, match="POST, PUT") as wrong_method:
            await svc.client.call(target, "request", kwargs={"name": "M1"}, http_method="GET")
        with pytest.raises(NotFound) as internal:
            await svc.client.call(target, "internal", http_method="GET")
        with pytest.raises(NotFound) as absent:
            await svc.client.call(target, "absent", http_method="GET")
        assert await svc.client.call(target, "internal") == "internal"
        with pytest.raises(NotFound) as absent_rpc:
            await svc.client.call(target, "absent")

    assert absent_rpc.value.text == f"no RPC method 'absent' on service {target}"
    # Over HTTP an internal method reads exactly like an absent one.
    assert internal.value.text == "no HTTP endpoint GET for RPC 'internal'"
    assert absent.value.text == "no HTTP endpoint GET for RPC 'absent'"

    assert put == {"name": "M1", "caffeine": 10}
    assert wrong_method.value.code == 405


async def test_timeout_names_target_and_method(redis_url, app_name):
    async with run_service(Machine, app=app_name, transport=redis_url) as svc:
        with pytest.raises(RequestTimeout, match=rf"{app_name}\.machine\.sleep") as timed_out:
            await svc.call("sleep", 1.0, timeout=0.2)

    assert timed_out.value.code == 504
    assert "may still have handled it" in str(timed_out.value)


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1.0])
async def test_call_rejects_invalid_timeout(redis_url, app_name, timeout):
    async with Client(redis_url, app=app_name) as client:
        with pytest.raises(ValueError, match="invalid timeout"):
            await client.call("nobody", "health", timeout=timeout)


async def test_call_without_service_times_out(redis_url, app_name):
    async with Client(redis_url, app=app_name) as client:
        with pytest.raises(RequestTimeout):
            await client.call("nobody", "health", timeout=0.2)


async def test_nested_call_inherits_deadline(redis_url, app_name):
    async with run_service(Machine, app=app_name, transport=redis_url) as svc:
        started = asyncio.get_running_loop().time()
        with pytest.raises(RemoteError) as relayed:
            # The inner call requests 5 s but the outer request only has 0.5 s left.
            await svc.call("relay", "machine", "sleep", 5.0, 1.0, timeout=0.5)
        elapsed = asyncio.get_running_loop().time() - started

    assert elapsed < 1.5
    assert isinstance(relayed.value, RequestTimeout)


async def test_concurrent_calls_get_own_replies(redis_url, app_name):
    async with run_service(Machine, app=app_name, transport=redis_url) as svc:
        results = await asyncio.gather(*(svc.call("add", i, 1000) for i in range(300)))

    assert results == [i + 1000 for i in range(300)]


def test_rpc_rejects_bad_http_declaration():
    with pytest.raises(ConfigError, match="FETCH"):
        rpc(http="FETCH")(Machine.add)
    with pytest.raises(ConfigError, match="give the HTTP methods"):
        rpc(http=True)(Machine.add)


def test_rpc_rejects_sync_method():
    def sync(self):
        return 1

    with pytest.raises(ConfigError, match="async def"):
        rpc(sync)


class Broken(Service):
    async def start(self) -> None:
        raise RuntimeError("start hook failed on purpose")


async def test_failed_start_leaves_no_tasks(redis_url, app_name):
    with pytest.raises(RuntimeError, match="on purpose"):
        async with run_service(Broken, app=app_name, transport=redis_url):
            pass

    leftover = [task.get_name() for task in asyncio.all_tasks() if task.get_name().startswith("vv-")]
    assert leftover == []


def test_unmarked_health_override_rejected():
    with pytest.raises(ConfigError, match="mark it @rpc"):
        class Quiet(Service):
            async def health(self) -> dict:
                return {}
