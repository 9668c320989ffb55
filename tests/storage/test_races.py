"""Races for one unique value, between replicas of one service."""

from __future__ import annotations

import asyncio

import redis.asyncio

from vv._errors import Conflict

RACERS = 16


async def _replicas(open_user_storage, redis_url):
    # Each replica has its own Redis client and PostgreSQL pool, like separate processes.
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(2)]
    replicas = [await open_user_storage(client=client) for client in clients]
    return clients, replicas


async def test_concurrent_adds_one_winner(open_user_storage, redis_url):
    clients, replicas = await _replicas(open_user_storage, redis_url)

    results = await asyncio.gather(
        *(replicas[index % 2].records.add(login="Taken" if index % 2 else "taken") for index in range(RACERS)),
        return_exceptions=True,
    )

    winners = [result for result in results if isinstance(result, int)]
    losers = [result for result in results if isinstance(result, Conflict)]
    assert len(winners) == 1
    assert len(losers) == RACERS - 1
    assert all("login" in loser.text for loser in losers)
    assert (await replicas[0].records.find("login", "TAKEN"))["id"] == winners[0]
    for client in clients:
        await client.aclose()


async def test_concurrent_updates_one_winner(open_user_storage, redis_url):
    clients, replicas = await _replicas(open_user_storage, redis_url)
    ids = [await replicas[0].records.add(login=f"user{index}") for index in range(RACERS)]

    results = await asyncio.gather(
        *(replicas[index % 2].records.update(record_id, login="wanted") for index, record_id in enumerate(ids)),
        return_exceptions=True,
    )

    winners = [result for result in results if isinstance(result, dict)]
    assert len(winners) == 1
    assert sum(isinstance(result, Conflict) for result in results) == RACERS - 1
    assert (await replicas[1].records.find("login", "wanted"))["id"] == winners[0]["id"]
    for record_id in ids:
        record = await replicas[0].records.get(record_id)
        assert (record["login"] == "wanted") == (record_id == winners[0]["id"])
    for client in clients:
        await client.aclose()


async def test_racing_updates_keep_newest_copy(open_user_storage, redis_url, redis_client):
    clients, replicas = await _replicas(open_user_storage, redis_url)
    user_id = await replicas[0].records.add(login="ann")

    await asyncio.gather(*(replicas[index % 2].records.update(user_id, level=index) for index in range(RACERS)))

    hot = await replicas[0].records.get(user_id)
    await redis_client.delete(replicas[0].keys.record(user_id))
    cold = await replicas[0].records.get(user_id)
    assert hot == cold
    for client in clients:
        await client.aclose()


async def test_freed_value_can_be_taken_after_delete_race(open_user_storage, redis_url):
    clients, replicas = await _replicas(open_user_storage, redis_url)
    user_id = await replicas[0].records.add(login="ann")

    results = await asyncio.gather(
        replicas[0].records.delete(user_id), replicas[1].records.add(login="ann"), return_exceptions=True
    )

    assert results[0] is None
    assert isinstance(results[1], (int, Conflict))
    final = await replicas[1].records.find("login", "ann")
    if isinstance(results[1], int):
        assert final["id"] == results[1]
    else:
        assert final is None
    for client in clients:
        await client.aclose()
