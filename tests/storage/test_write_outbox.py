"""Redis writes of the storage go through an outbox: batched, ordered, and sent even for a cancelled caller."""

from __future__ import annotations

import asyncio

import pytest

from vv._errors import TransportError
from vv.storage.redis_side import HotStore


async def test_concurrent_adds_each_find_their_copy(open_user_storage, redis_client):
    storage = await open_user_storage()

    async def add_and_check(index: int) -> int:
        user_id = await storage.records.add(login=f"user{index}", level=index)
        # The copy must be in Redis when add returns, even when its write
        # shared a pipeline with the writes of other adds.
        assert await redis_client.exists(storage.keys.record(user_id)) == 1
        return user_id

    ids = await asyncio.gather(*(add_and_check(index) for index in range(64)))

    assert len(set(ids)) == 64
    for index, user_id in enumerate(ids):
        assert (await storage.records.get(user_id))["level"] == index


async def test_writes_of_one_key_keep_their_order(open_user_storage):
    storage = await open_user_storage()
    user_id = await storage.records.add(login="ann", level=0)

    await asyncio.gather(*(storage.records.update(user_id, level=level) for level in range(1, 30)))
    final = (await storage.records.list())[0]["level"]

    assert (await storage.records.get(user_id))["level"] == final


async def test_flushed_scripts_are_loaded_again(open_user_storage, private_redis):
    _, client = private_redis
    storage = await open_user_storage(client=client)
    user_id = await storage.records.add(login="ann")

    await client.script_flush()
    second_id = await storage.records.add(login="bob")
    await storage.records.update(user_id, level=5)

    assert await client.exists(storage.keys.record(second_id)) == 1
    assert (await storage.records.get(user_id))["level"] == 5


async def test_cancelled_caller_write_is_still_sent(private_redis):
    _, client = private_redis
    hot = HotStore(client, timeout_s=5.0)
    # Pausing writes keeps the first write in flight, so the second one
    # waits in the outbox for the next batch when its caller is cancelled.
    await client.client_pause(1000, all=False)
    first = asyncio.create_task(hot.write_cell("cell:first", 1, '"a"', None))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(hot.write_cell("cell:second", 1, '"b"', None))
    await asyncio.sleep(0.2)
    second.cancel()

    assert await first is True
    await hot.close()

    assert second.cancelled()
    assert await client.hget("cell:second", "d") == b'"b"'


async def test_write_with_redis_down_raises_transport_error(private_redis):
    server, client = private_redis
    hot = HotStore(client, timeout_s=2.0)
    assert await hot.write_cell("cell:before", 1, '"a"', None) is True

    server.stop()

    with pytest.raises(TransportError, match="cell:after"):
        await hot.write_cell("cell:after", 1, '"b"', None)
    await hot.close()
