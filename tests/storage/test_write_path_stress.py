"""The storage's write path under concurrent load, Redis and PostgreSQL trouble, cancelled callers and shutdown.

Each test runs many adds, updates and deletes, records which ones reported
success, and then compares PostgreSQL, the Redis copies, the unique index
and the event stream against that ledger (``find_problems``). The tests of
cancelled callers check that a write whose caller gives up still reaches
both PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import redis.asyncio

from vv import Entity, Field, NotFound, Service, rpc
from vv._config import TransportSettings
from vv._keys import ServiceKeys
from vv._rpc import Client
from vv._service import ServiceRunner
from vv._transport import close_client, connect
from vv.testing import run_service

ITEM = Entity("item", {"login": Field(str, required=True, unique=True), "level": Field(int, default=0)})

# Seconds an RPC call may take before the test counts its outcome as unknown.
CALL_TIMEOUT_S = 3.0


class Items(Service):
    entity = ITEM

    @rpc()
    async def add(self, login: str, level: int = 0) -> int:
        return await self.records.add(login=login, level=level)

    @rpc()
    async def update(self, id: int, level: int) -> dict:  # noqa: A002 - record ids travel as 'id'
        return await self.records.update(id, level=level)

    @rpc()
    async def delete(self, id: int) -> None:  # noqa: A002
        await self.records.delete(id)

    @rpc()
    async def get(self, id: int) -> dict:  # noqa: A002
        return await self.records.get(id)


@dataclass
class Ledger:
    """Outcomes of the writes a test sent, keyed by record id.

    ``expected`` contains the values the last successful write of a record left
    (None once a delete succeeded). A record gets into ``unsure`` when one of
    its writes failed or timed out: PostgreSQL may or may not have that
    change, and its Redis copy may be stale, as the storage documents for a
    Redis failure after the commit.
    """

    added: dict[int, dict[str, Any]] = field(default_factory=dict)
    expected: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    unsure: set[int] = field(default_factory=set)
    # Ids of adds that were sent after the last Redis data loss.
    added_since_loss: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    # Writes that reported an outcome, success or failure.
    finished: int = 0

    @property
    def deleted(self) -> set[int]:
        return {record_id for record_id, values in self.expected.items() if values is None}


Call = Callable[..., Awaitable[Any]]


async def run_worker(call: Call, ledger: Ledger, worker: int, operations: int, seed: int,
                     data_lost: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    """Add, update and delete records that only this worker touches, and log every outcome in ``ledger``.

    The worker ends early once ``stop`` is set.
    """
    rng = random.Random(seed * 1000 + worker)
    live: list[int] = []
    for step in range(operations):
        if stop is not None and stop.is_set():
            return
        roll = rng.random()
        if not live or roll < 0.4:
            await _add(call, ledger, live, f"w{worker}-{step}", rng.randrange(1000), data_lost)
        elif roll < 0.85:
            await _update(call, ledger, rng.choice(live), rng.randrange(1000))
        else:
            record_id = rng.choice(live)
            live.remove(record_id)
            await _delete(call, ledger, record_id)
        ledger.finished += 1


async def _add(call: Call, ledger: Ledger, live: list[int], login: str, level: int,
               data_lost: asyncio.Event | None) -> None:
    sent_after_loss = data_lost is not None and data_lost.is_set()
    try:
        record_id = await call("add", login=login, level=level)
    except Exception as exc:  # any failure leaves the outcome unknown
        ledger.errors.append(f"add {login}: {exc!r}")
        return
    ledger.added[record_id] = {"login": login, "level": level}
    ledger.expected[record_id] = {"login": login, "level": level}
    if sent_after_loss:
        ledger.added_since_loss.add(record_id)
    live.append(record_id)


async def _update(call: Call, ledger: Ledger, record_id: int, level: int) -> None:
    try:
        record = await call("update", record_id, level=level)
    except Exception as exc:
        ledger.errors.append(f"update {record_id}: {exc!r}")
        ledger.unsure.add(record_id)
        return
    if record["level"] != level:
        ledger.errors.append(f"update {record_id} returned {record!r}, sent level {level}")
    ledger.expected[record_id] = {"login": record["login"], "level": level}


async def _delete(call: Call, ledger: Ledger, record_id: int) -> None:
    try:
        await call("delete", record_id)
    except Exception as exc:
        ledger.errors.append(f"delete {record_id}: {exc!r}")
        ledger.unsure.add(record_id)
        return
    ledger.expected[record_id] = None


def rpc_caller(handle: Any) -> Call:
    async def call(method: str, *args: Any, **kwargs: Any) -> Any:
        return await handle.call(method, *args, timeout=CALL_TIMEOUT_S, **kwargs)

    return call


@dataclass
class Problems:
    """Invariant violations found by ``find_problems``, one list per invariant."""

    postgres: list[str] = field(default_factory=list)
    redis_copy: list[str] = field(default_factory=list)
    unique_index: list[str] = field(default_factory=list)
    deleted_readable: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


async def find_problems(database_url: str, client: redis.asyncio.Redis, keys: ServiceKeys, ledger: Ledger,
                        call: Call | None = None) -> Problems:
    """Compare PostgreSQL, the Redis copies, the unique index and the event stream against ``ledger``.

    With ``call``, deleted records must raise NotFound through the service's
    ``get`` RPC too.
    """
    problems = Problems()
    rows = await _postgres_rows(database_url)

    for record_id, values in ledger.expected.items():
        if record_id in ledger.unsure:
            continue
        row = rows.get(record_id)
        if values is None and row is not None:
            problems.postgres.append(f"item {record_id} was deleted but PostgreSQL has {dict(row)}")
        if values is not None and row is None:
            problems.postgres.append(f"item {record_id} is missing from PostgreSQL, expected {values}")
        stored = None if row is None else {"login": row["login"], "level": row["level"]}
        if values is not None and stored is not None and stored != values:
            problems.postgres.append(f"item {record_id} is {dict(row)} in PostgreSQL, expected {values}")

    for record_id in sorted(set(rows) | set(ledger.expected)):
        if record_id in ledger.unsure:
            continue
        problem = await _copy_problem(client, keys, record_id, rows.get(record_id))
        if problem is not None:
            problems.redis_copy.append(problem)

    index = await client.hgetall(keys.unique_index("login"))
    for comparison_key, record_id in index.items():
        row = rows.get(int(record_id))
        if row is None or row["_key_login"] != comparison_key.decode():
            stored = dict(row) if row is not None else "no such row"
            problems.unique_index.append(f"index entry {comparison_key!r} -> {int(record_id)}, PostgreSQL has {stored}")

    if call is not None:
        for record_id in sorted(ledger.deleted - ledger.unsure):
            try:
                record = await call("get", record_id)
            except NotFound:
                continue
            problems.deleted_readable.append(f"deleted item {record_id} still reads as {record}")

    # Events appended before Redis lost its data are gone with the stream.
    added_ids = await _added_event_ids(client, keys)
    expected_ids = ledger.added_since_loss if ledger.added_since_loss else set(ledger.added)
    for record_id in sorted(expected_ids - added_ids):
        problems.events.append(f"no item.added event for item {record_id}")
    return problems


async def _postgres_rows(database_url: str) -> dict[int, asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch('SELECT id, login, level, _version, _key_login FROM "item"')
    finally:
        await connection.close()
    return {row["id"]: row for row in rows}


async def _copy_problem(client: redis.asyncio.Redis, keys: ServiceKeys, record_id: int,
                        row: asyncpg.Record | None) -> str | None:
    """Return how the Redis copy of a record differs from its PostgreSQL row, or None when it matches."""
    cell = await client.hgetall(keys.record(record_id))
    if not cell:
        return None
    text = cell[b"d"].decode()
    if text == "":
        if row is not None:
            return f"item {record_id} has a tombstone in Redis but PostgreSQL has {dict(row)}"
        return None
    copy = json.loads(text)
    if row is None:
        return f"item {record_id} is deleted in PostgreSQL but Redis has {copy}"
    expected_copy = {"id": row["id"], "login": row["login"], "level": row["level"]}
    if copy != expected_copy or int(cell[b"v"]) != row["_version"]:
        return f"item {record_id}: Redis has {copy} at version {int(cell[b'v'])}, " \
               f"PostgreSQL {expected_copy} at version {row['_version']}"
    return None


async def _added_event_ids(client: redis.asyncio.Redis, keys: ServiceKeys) -> set[int]:
    ids: set[int] = set()
    for _entry_id, fields in await client.xrange(keys.events):
        if fields.get(b"event") == b"item.added":
            ids.add(json.loads(fields[b"body"])["id"])
    return ids


def service_storage_client(url: str) -> Any:
    """Return a Redis client made as a service makes its storage's client: no socket timeout, no retries."""
    return connect(url, cluster=False, settings=TransportSettings(), storage=True)


async def wait_for_progress(ledger: Ledger, count: int, timeout_s: float = 10.0) -> None:
    """Wait until ``count`` writes have reported an outcome; raise TimeoutError after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while ledger.finished < count:
            await asyncio.sleep(0.01)


# --- concurrent load without trouble ---------------------------------------


async def test_concurrent_rpc_writes_keep_invariants(redis_url, redis_client, app_name, database_url):
    ledger = Ledger()

    async with run_service(Items, app=app_name, transport=redis_url, database=database_url) as handle:
        call = rpc_caller(handle)
        await asyncio.gather(*(run_worker(call, ledger, worker, 30, seed=1) for worker in range(64)))
        problems = await find_problems(database_url, redis_client, handle.service.keys, ledger, call=call)

    assert ledger.errors == []
    assert len(ledger.added) > 500
    assert problems.postgres == []
    assert problems.redis_copy == []
    assert problems.unique_index == []
    assert problems.deleted_readable == []
    assert problems.events == []


async def test_concurrent_updates_of_shared_records_match_postgres(redis_client, app_name, database_url,
                                                                   open_user_storage):
    storage = await open_user_storage()
    ids = [await storage.records.add(login=f"shared{index}") for index in range(8)]
    rng = random.Random(7)

    async def writer() -> None:
        for _ in range(40):
            record_id = rng.choice(ids)
            if rng.random() < 0.8:
                await storage.records.update(record_id, level=rng.randrange(10**6))
            else:
                # Read-throughs race with the updates' Redis writes.
                await redis_client.delete(storage.keys.record(record_id))
                await storage.records.get(record_id)

    await asyncio.gather(*(writer() for _ in range(32)))

    for record_id in ids:
        row = await storage.database.fetchrow('SELECT level, _version FROM "user" WHERE id = $1', record_id)
        cell = await redis_client.hgetall(storage.keys.record(record_id))
        assert json.loads(cell[b"d"])["level"] == row["level"], record_id
        assert int(cell[b"v"]) == row["_version"], record_id


# --- Redis trouble ------------------------------------------------------------


async def test_writes_recover_after_redis_restart_and_script_flush(private_redis, app_name, database_url):
    server, client = private_redis
    ledger = Ledger()
    data_lost = asyncio.Event()

    async with run_service(Items, app=app_name, transport=server.url, database=database_url) as handle:
        call = rpc_caller(handle)
        workers = asyncio.gather(*(run_worker(call, ledger, worker, 20, seed=2, data_lost=data_lost)
                                   for worker in range(32)))
        await wait_for_progress(ledger, 200)
        await asyncio.to_thread(server.restart)
        data_lost.set()
        await wait_for_progress(ledger, 400)
        await client.script_flush()
        await workers

        # The same service, without a restart, serves writes again.
        record_id = await call("add", login="after-trouble", level=1)
        assert (await call("update", record_id, level=2))["level"] == 2
        assert await call("get", record_id) == {"id": record_id, "login": "after-trouble", "level": 2}
        problems = await find_problems(database_url, client, handle.service.keys, ledger, call=call)

    assert len(ledger.added_since_loss) > 20
    assert problems.postgres == []
    assert problems.redis_copy == []
    assert problems.unique_index == []
    assert problems.deleted_readable == []
    assert problems.events == []


async def test_writes_recover_after_postgres_outage(postgres_server_factory, stop_postgres_fast, redis_url,
                                                   redis_client, app_name):
    postgres = postgres_server_factory()
    ledger = Ledger()
    database_url = postgres.url()

    async with run_service(Items, app=app_name, transport=redis_url, database=database_url) as handle:
        call = rpc_caller(handle)
        workers = asyncio.gather(*(run_worker(call, ledger, worker, 20, seed=3) for worker in range(32)))
        await wait_for_progress(ledger, 150)
        await asyncio.to_thread(stop_postgres_fast, postgres)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(postgres.start)
        await workers

        record_id = await call("add", login="after-outage", level=1)
        assert (await call("update", record_id, level=2))["level"] == 2
        problems = await find_problems(database_url, redis_client, handle.service.keys, ledger, call=call)

    assert any("StorageUnavailable" in error or "503" in error for error in ledger.errors), ledger.errors[:5]
    assert problems.postgres == []
    assert problems.redis_copy == []
    assert problems.unique_index == []
    assert problems.deleted_readable == []
    assert problems.events == []


# --- shutdown -------------------------------------------------------------------


async def test_drain_keeps_every_acknowledged_write(redis_url, redis_client, app_name, database_url):
    service = Items(app=app_name, transport=redis_url, database=database_url)
    runner = ServiceRunner(service)
    await runner.start()
    ledger = Ledger()

    async with Client(redis_url, app=app_name) as client:
        async def call(method: str, *args: Any, **kwargs: Any) -> Any:
            return await client.call(service.service_id, method, args=args, kwargs=kwargs, timeout=2.0)

        drained = asyncio.Event()
        workers = asyncio.gather(*(run_worker(call, ledger, worker, 15, seed=4, stop=drained)
                                   for worker in range(64)))
        await wait_for_progress(ledger, 200)
        await runner.drain(timeout_s=10.0)
        drained.set()
        await workers

    assert ledger.finished >= 200
    async with run_service(Items, app=app_name, transport=redis_url, database=database_url) as handle:
        restarted = rpc_caller(handle)
        problems = await find_problems(database_url, redis_client, service.keys, ledger, call=restarted)
        for record_id, values in ledger.expected.items():
            if values is not None and record_id not in ledger.unsure:
                assert await restarted("get", record_id) == {"id": record_id, **values}

    assert problems.postgres == []
    assert problems.redis_copy == []
    assert problems.unique_index == []
    assert problems.deleted_readable == []
    assert problems.events == []


# --- cancelled callers --------------------------------------------------------------


async def test_queued_write_of_cancelled_caller_lands(open_user_storage, private_redis):
    server, client = private_redis
    storage = await open_user_storage(client=client)
    ids = [await storage.records.add(login=f"user{index}") for index in range(2)]

    # While writes are paused, the first update's Redis write is in flight,
    # so the second one waits in the outbox when its caller gives up.
    await client.client_pause(800, all=False)
    first = asyncio.create_task(storage.records.update(ids[0], level=1))
    await asyncio.sleep(0.2)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(storage.records.update(ids[1], level=2), 0.2)
    await first
    await finish_writes(storage)

    assert (await storage.records.get(ids[1]))["level"] == 2


async def finish_writes(storage: Any) -> None:
    """Wait for the writes of cancelled callers, then send what the outbox still holds."""
    await storage.writes.wait()
    await storage.hot.close()


async def _stale_records(storage: Any, ids: list[int]) -> list[str]:
    """Return the records whose value through ``get`` differs from their PostgreSQL row."""
    stale = []
    for record_id in ids:
        row = await storage.database.fetchrow('SELECT level FROM "user" WHERE id = $1', record_id)
        try:
            record = await storage.records.get(record_id)
        except NotFound:
            record = None
        if row is None and record is not None:
            stale.append(f"user {record_id} is deleted in PostgreSQL but get returns {record}")
        if row is not None and (record is None or record["level"] != row["level"]):
            stale.append(f"user {record_id}: get returns {record}, PostgreSQL has level {row['level']}")
    return stale


async def test_cancelled_updates_leave_no_stale_copy(open_user_storage):
    storage = await open_user_storage()
    ids = [await storage.records.add(login=f"user{index}", level=0) for index in range(40)]
    rng = random.Random(5)

    async def writer() -> None:
        for _ in range(60):
            record_id = rng.choice(ids)
            try:
                await asyncio.wait_for(storage.records.update(record_id, level=rng.randrange(10**6)),
                                       rng.uniform(0.0005, 0.05))
            except TimeoutError:
                pass

    stale: list[str] = []
    # Each round cancels about 200 updates at random points. When writes
    # ran in their caller's task, one round usually left one to three
    # stale copies, so five rounds rarely miss such a bug.
    for _ in range(5):
        await asyncio.gather(*(writer() for _ in range(32)))
        await finish_writes(storage)
        stale = await _stale_records(storage, ids)
        if stale:
            break

    assert stale == []


async def test_cancelled_deletes_leave_no_readable_record(open_user_storage):
    storage = await open_user_storage()
    rng = random.Random(6)
    ids: list[int] = []

    async def deleter(worker: int) -> None:
        for step in range(30):
            record_id = await storage.records.add(login=f"w{worker}-{step}")
            ids.append(record_id)
            try:
                await asyncio.wait_for(storage.records.delete(record_id), rng.uniform(0.0005, 0.01))
            except TimeoutError:
                pass

    stale: list[str] = []
    for _ in range(5):
        await asyncio.gather(*(deleter(worker) for worker in range(32)))
        await finish_writes(storage)
        stale = await _stale_records(storage, ids)
        if stale:
            break

    assert stale == []


async def test_inline_write_of_cancelled_caller_lands(open_user_storage, private_redis):
    server, client = private_redis
    storage_client = service_storage_client(server.url)
    storage = await open_user_storage(client=storage_client)
    user_id = await storage.records.add(login="ann", level=0)

    # The update's EVALSHA reaches Redis and waits out the pause. If the
    # caller's timeout cancelled the task that sends it, redis-py would close
    # the connection and Redis (7.0 here) would drop the paused command.
    await client.client_pause(800, all=False)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(storage.records.update(user_id, level=1), 0.3)
    await asyncio.sleep(0.7)
    await finish_writes(storage)

    row = await storage.database.fetchrow('SELECT level FROM "user" WHERE id = $1', user_id)
    assert row["level"] == 1
    assert (await storage.records.get(user_id))["level"] == 1
    await close_client(storage_client)


async def test_cancelled_write_after_persistent_redis_restart(open_user_storage, redis_server_factory):
    server = redis_server_factory(persistent=True)
    storage_client = service_storage_client(server.url)
    storage = await open_user_storage(client=storage_client)
    user_id = await storage.records.add(login="ann", level=0)

    await asyncio.to_thread(server.restart)
    # The pause comes from another client, so the storage's pooled connection
    # is still the one the restart closed. A paused Redis blocks the
    # reconnect's handshake, which widens the moment between the PostgreSQL
    # commit and the write reaching Redis.
    client = redis.asyncio.Redis.from_url(server.url)
    await client.client_pause(800, all=True)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(storage.records.update(user_id, level=1), 0.3)
    await asyncio.sleep(0.7)
    await finish_writes(storage)

    row = await storage.database.fetchrow('SELECT level FROM "user" WHERE id = $1', user_id)
    assert row["level"] == 1
    assert (await storage.records.get(user_id))["level"] == 1
    await client.aclose()
    await close_client(storage_client)
