"""Losing every Redis key loses no record, list item or state value."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from vv._errors import Conflict
from vv.storage import Entity, Field


@pytest.fixture
async def private_redis(redis_server_factory):
    server = redis_server_factory()
    client = redis.asyncio.Redis.from_url(server.url)
    yield client
    await client.aclose()


async def test_flushall_loses_nothing(open_user_storage, private_redis):
    storage = await open_user_storage(client=private_redis)
    ids = [await storage.records.add(login=f"user{index}", level=index) for index in range(3)]
    await storage.records.delete(ids[2])
    await storage.list("log").append("first")
    await storage.state.set("level", 7)

    await private_redis.flushall()

    assert [(await storage.records.get(record_id))["level"] for record_id in ids[:2]] == [0, 1]
    assert (await storage.records.find("login", "USER1"))["id"] == ids[1]
    assert await storage.list("log").items() == ["first"]
    assert await storage.state.get("level") == 7
    assert await storage.records.add(login="new") == ids[2] + 1
    with pytest.raises(Conflict, match="login"):
        await storage.records.add(login="user0")


async def test_ids_continue_after_flush_and_restart(open_user_storage, private_redis):
    storage = await open_user_storage(client=private_redis)
    last = 0
    for index in range(4):
        last = await storage.records.add(login=f"user{index}")
    await storage.close()

    await private_redis.flushall()
    restarted = await open_user_storage(client=private_redis)

    assert await restarted.records.add(login="after") == last + 1


async def test_records_refill_redis_after_flush(open_user_storage, private_redis):
    storage = await open_user_storage(client=private_redis)
    user_id = await storage.records.add(login="ann")
    await private_redis.flushall()

    await storage.records.get(user_id)

    assert await private_redis.exists(storage.keys.record(user_id)) == 1


async def test_hot_copy_expires_after_ttl(open_user_storage, FakeService, private_redis):
    entity = Entity("note", {"text": Field(str)}, hot_ttl_s=0.2)
    storage = await open_user_storage(FakeService(entity), component="note", client=private_redis)
    note_id = await storage.records.add(text="x")
    ttl_ms = await private_redis.pttl(storage.keys.record(note_id))

    await asyncio.sleep(0.4)

    assert 0 < ttl_ms <= 200
    assert await private_redis.exists(storage.keys.record(note_id)) == 0
    assert (await storage.records.get(note_id))["text"] == "x"
    assert await private_redis.exists(storage.keys.record(note_id)) == 1


async def test_read_restarts_hot_ttl(open_user_storage, FakeService, private_redis):
    entity = Entity("note", {"text": Field(str)}, hot_ttl_s=1.0)
    storage = await open_user_storage(FakeService(entity), component="note", client=private_redis)
    note_id = await storage.records.add(text="x")

    # Without the restart at 0.6 s, the copy written at 0 s would be gone at 1.2 s.
    await asyncio.sleep(0.6)
    await storage.records.get(note_id)
    await asyncio.sleep(0.6)

    assert await private_redis.exists(storage.keys.record(note_id)) == 1


async def test_redis_restart_loses_nothing(open_user_storage, redis_server_factory):
    server = redis_server_factory()
    client = redis.asyncio.Redis.from_url(server.url)
    storage = await open_user_storage(client=client)
    user_id = await storage.records.add(login="ann")
    await storage.state.set("level", 3)

    # A restart without persistence empties Redis and drops the loaded Lua scripts.
    server.restart()

    assert (await storage.records.get(user_id))["login"] == "ann"
    assert await storage.state.get("level") == 3
    assert await storage.records.add(login="bob") == user_id + 1
    await client.aclose()
