"""Append-only lists and key/value state."""

from __future__ import annotations

import asyncio

import pytest

from vv._errors import InvalidRequest


async def test_list_appends_in_order(storage):
    log = storage.list("log")
    for index in range(5):
        await log.append({"n": index})

    assert await log.items() == [{"n": index} for index in range(5)]
    assert await log.length() == 5


@pytest.mark.parametrize(("first", "last", "expected"), [(0, 1, [0, 1]), (-2, -1, [3, 4]), (3, 10, [3, 4]), (4, 2, [])])
async def test_list_items_range(storage, first, last, expected):
    log = storage.list("log")
    for index in range(5):
        await log.append(index)

    assert await log.items(first, last) == expected


async def test_empty_list(storage):
    log = storage.list("nothing")

    assert await log.items() == []
    assert await log.length() == 0


async def test_lists_are_separate(storage):
    await storage.list("a").append(1)
    await storage.list("b").append(2)

    assert await storage.list("a").items() == [1]
    assert await storage.list("b").items() == [2]


async def test_list_reload_keeps_commit_order(storage, redis_client):
    log = storage.list("log")
    await asyncio.gather(*(log.append(index) for index in range(20)))
    hot = await log.items()

    await redis_client.delete(log.key)
    cold = await log.items()

    assert sorted(hot) == list(range(20))
    assert cold == hot


async def test_list_appended_while_cold_is_complete_after_load(storage, redis_client):
    log = storage.list("log")
    await log.append("a")
    await redis_client.delete(log.key)

    await log.append("b")

    assert await log.length() == 2
    assert await log.items() == ["a", "b"]


async def test_list_rejects_bytes(storage):
    with pytest.raises(InvalidRequest, match="bytes"):
        await storage.list("log").append(b"x")


async def test_state_set_get_delete(storage):
    await storage.state.set("level", 3)
    assert await storage.state.get("level") == 3

    await storage.state.set("level", 4)
    assert await storage.state.get("level") == 4

    await storage.state.delete("level")
    assert await storage.state.get("level", "unset") == "unset"


async def test_state_none_differs_from_missing(storage):
    await storage.state.set("empty", None)

    assert await storage.state.get("empty", "unset") is None
    assert await storage.state.get("other", "unset") == "unset"


async def test_state_set_after_delete_is_visible(storage, redis_client):
    await storage.state.set("k", 1)
    await storage.state.delete("k")

    await storage.state.set("k", 2)

    assert await storage.state.get("k") == 2
    await redis_client.delete(storage.keys.state("k"))
    assert await storage.state.get("k") == 2


async def test_state_read_through_after_redis_lost_it(storage, redis_client):
    await storage.state.set("k", {"a": [1]})
    await redis_client.delete(storage.keys.state("k"))

    assert await storage.state.get("k") == {"a": [1]}
    assert await redis_client.exists(storage.keys.state("k")) == 1


async def test_state_stale_refill_does_not_overwrite_newer_write(storage, redis_client):
    await storage.state.set("k", "new")
    key = storage.keys.state("k")
    version = int(await redis_client.hget(key, "v"))

    written = await storage.hot.write_cell(key, version - 1, '"old"', None)

    assert written is False
    assert await storage.state.get("k") == "new"


async def test_state_rejects_empty_name(storage):
    with pytest.raises(InvalidRequest, match="state name"):
        await storage.state.get("")
