"""Delivery guarantees of RPC: sharing, claiming, deadlines, dead letters and limits."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import redis.asyncio as aioredis

from vv import (
    Client,
    DeadLettered,
    InvalidRequest,
    QueueFullError,
    RequestTimeout,
    Service,
    TransportSettings,
    rpc,
)
from vv._keys import ServiceKeys
from vv.testing import run_service


class Worker(Service):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.handled: list[int] = []
        self.active = 0
        self.max_active = 0

    @rpc
    async def work(self, n: int, seconds: float = 0.0) -> int:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(seconds)
            self.handled.append(n)
            return n * 2
        finally:
            self.active -= 1


SLOW_WORKER = '''
    import asyncio
    from vv import Service, rpc

    class Worker(Service):
        @rpc
        async def work(self, n: int, seconds: float = 0.0) -> int:
            await asyncio.sleep(seconds)
            return n * 2
'''


async def wait_healthy(client: Client, target: str, process, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.process.poll() is None, process.log
        try:
            await client.call(target, "health", timeout=0.5)
            return
        except RequestTimeout:
            if time.monotonic() > deadline:
                raise


async def pending_count(redis_url: str, keys: ServiceKeys) -> int:
    raw = aioredis.Redis.from_url(redis_url)
    try:
        return (await raw.xpending(keys.requests, keys.group))["pending"]
    finally:
        await raw.aclose()


async def test_two_instances_share_requests(redis_url, app_name):
    async with run_service(Worker, app=app_name, transport=redis_url) as one, \
            run_service(Worker, app=app_name, transport=redis_url) as two:
        results = await asyncio.gather(*(one.call("work", n, 0.001) for n in range(1000)))
        handled = one.service.handled + two.service.handled

    assert results == [n * 2 for n in range(1000)]
    assert sorted(handled) == list(range(1000))
    assert one.service.handled
    assert two.service.handled


async def test_killed_instance_work_is_claimed(redis_url, app_name, vv_start):
    env = {"VV_CLAIM_IDLE_MS": "1000"}
    keys = ServiceKeys(app_name, "worker")
    first = vv_start(SLOW_WORKER, app=app_name, transport=redis_url, env=env)
    async with Client(redis_url) as client:
        await wait_healthy(client, keys.service_id, first)
        calls = [asyncio.create_task(client.call(keys.service_id, "work", args=[n, 2.0], timeout=15))
                 for n in range(20)]
        while await pending_count(redis_url, keys) < 20:
            await asyncio.sleep(0.05)
        first.kill()

        second = vv_start(SLOW_WORKER, app=app_name, transport=redis_url, env=env)
        results = await asyncio.gather(*calls)
        await asyncio.sleep(0.2)
        pending = await pending_count(redis_url, keys)
        second.terminate()

    assert results == [n * 2 for n in range(20)]
    assert pending == 0
    assert "claimed" in second.log


async def test_expired_requests_never_run(redis_url, app_name):
    async with Client(redis_url, app=app_name) as client:
        for n in range(3):
            with pytest.raises(RequestTimeout):
                await client.call("worker", "work", args=[n], timeout=0.1)

    async with run_service(Worker, app=app_name, transport=redis_url) as svc:
        assert await svc.call("work", 100) == 200
        handled = list(svc.service.handled)

    assert handled == [100]


async def test_slow_handler_not_claimed_twice(redis_url, app_name):
    settings = {"claim_idle_ms": 300}
    async with run_service(Worker, app=app_name, transport=redis_url, **settings) as one, \
            run_service(Worker, app=app_name, transport=redis_url, **settings) as two:
        results = await asyncio.gather(*(one.call("work", n, 1.2) for n in range(6)))
        handled = one.service.handled + two.service.handled

    assert results == [n * 2 for n in range(6)]
    assert sorted(handled) == list(range(6))


async def test_malformed_entries_dead_lettered(redis_url, app_name, caplog):
    keys = ServiceKeys(app_name, "worker")
    raw = aioredis.Redis.from_url(redis_url)
    future_ms = int(time.time() * 1000) + 60_000
    reply = f"vv:{{reply.{app_name}}}:replies"
    good = {"id": "m", "method": "work", "reply": reply, "deadline_ms": future_ms}
    entries = [
        {"method": "work"},                                                      # missing fields
        {**good, "id": "bad-json", "body": "{not json"},                         # invalid JSON
        {**good, "id": "bad-args", "body": json.dumps({"args": {"n": 1}})},      # args not a list
        {**good, "id": "bad-deadline", "deadline_ms": "soon", "body": "{}"},     # deadline not a number
        {**good, "id": "huge", "body": json.dumps({"args": ["x" * (5 << 20)]})},  # 5 MB
    ]
    try:
        for entry in entries:
            await raw.xadd(keys.requests, entry)
        with caplog.at_level(logging.WARNING, logger="vv"):
            async with run_service(Worker, app=app_name, transport=redis_url) as svc:
                while await raw.xlen(keys.dead_letters) < len(entries):
                    await asyncio.sleep(0.05)
                assert await svc.call("work", 1) == 2
                await svc.runner.outbox.flush()
        replies = [json.loads(item) for item in await raw.lrange(reply, 0, -1)]
        dead = await raw.xrange(keys.dead_letters)
        pending = (await raw.xpending(keys.requests, keys.group))["pending"]
    finally:
        await raw.delete(reply)
        await raw.aclose()

    assert len(dead) == 5
    assert pending == 0
    assert sorted(r["id"] for r in replies) == ["bad-args", "bad-deadline", "bad-json", "huge"]
    assert all(r["error"]["code"] == InvalidRequest.code for r in replies)
    bodies = [fields.get(b"field:body", b"") for _, fields in dead]
    assert any(b"5242" in body and b"bytes dropped" in body for body in bodies)
    assert sum("dead-lettering" in record.getMessage() for record in caplog.records) == 5


async def test_redelivered_request_dead_lettered_and_caller_told(redis_url, app_name):
    keys = ServiceKeys(app_name, "worker")
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.xgroup_create(keys.requests, keys.group, id="0", mkstream=True)
        async with Client(redis_url, app=app_name) as client:
            call = asyncio.create_task(client.call("worker", "work", args=[1], timeout=10))
            # Two instances that read the request and died without acknowledging it.
            while not await raw.xreadgroup(keys.group, "dead-1", {keys.requests: ">"}, count=1):
                await asyncio.sleep(0.01)
            pending = await raw.xpending_range(keys.requests, keys.group, "-", "+", 1)
            await raw.xclaim(keys.requests, keys.group, "dead-2", 0, [pending[0]["message_id"]])
            await asyncio.sleep(0.35)

            async with run_service(Worker, app=app_name, transport=redis_url,
                                   claim_idle_ms=300, max_deliveries=2) as svc:
                with pytest.raises(DeadLettered, match="dead-lettered"):
                    await call
                handled = list(svc.service.handled)
        dead = await raw.xlen(keys.dead_letters)
    finally:
        await raw.aclose()

    assert handled == []
    assert dead == 1


async def test_trimmed_pending_entry_dropped(redis_url, app_name, caplog):
    keys = ServiceKeys(app_name, "worker")
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.xgroup_create(keys.requests, keys.group, id="0", mkstream=True)
        entry_id = await raw.xadd(keys.requests, {"id": "x", "method": "work", "reply": "r", "deadline_ms": "0",
                                                  "body": "{}"})
        await raw.xreadgroup(keys.group, "dead-1", {keys.requests: ">"}, count=1)
        await raw.xdel(keys.requests, entry_id)
        with caplog.at_level(logging.WARNING, logger="vv"):
            async with run_service(Worker, app=app_name, transport=redis_url, claim_idle_ms=200):
                deadline = time.monotonic() + 5
                while (await raw.xpending(keys.requests, keys.group))["pending"] and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        pending = (await raw.xpending(keys.requests, keys.group))["pending"]
    finally:
        await raw.aclose()

    assert pending == 0
    assert any("trimmed" in record.getMessage() for record in caplog.records)


async def test_full_queue_rejects_call(redis_url, app_name):
    async with Client(redis_url, app=app_name, settings=TransportSettings(max_queue_len=3)) as client:
        waiting = [asyncio.create_task(client.call("worker", "work", args=[n], timeout=1)) for n in range(3)]
        await asyncio.sleep(0.1)
        with pytest.raises(QueueFullError, match="is full with 3 waiting requests"):
            await client.call("worker", "work", args=[3], timeout=1)
        results = await asyncio.gather(*waiting, return_exceptions=True)

    assert all(isinstance(result, RequestTimeout) for result in results)


async def test_concurrency_is_bounded(redis_url, app_name):
    async with run_service(Worker, app=app_name, transport=redis_url, max_concurrency=3) as svc:
        await asyncio.gather(*(svc.call("work", n, 0.05) for n in range(15)))
        max_active = svc.service.max_active

    assert max_active == 3
