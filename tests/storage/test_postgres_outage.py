"""PostgreSQL stopped and started under a running storage."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from vv._errors import StorageUnavailable
from vv._keys import ServiceKeys
from vv.storage import open_storage
from vv.storage.postgres import POOL_MAX_SIZE
from vvkit.local.servers import PostgresServer

# A write must fail within this time while PostgreSQL is down.
FAIL_FAST_S = 2.0


def stop_fast(server) -> None:
    """Stop PostgreSQL with SIGINT (fast shutdown), which closes client sessions at once.

    SIGTERM requests a smart shutdown, which waits for the pool's idle
    connections to disconnect.
    """
    server.process.send_signal(signal.SIGINT)
    server.process.wait(timeout=30)
    server.process = None


@pytest.fixture
def postgres():
    """A private PostgreSQL server whose data folder lies outside pytest's temporary root.

    A pytest session that starts while this one runs resets its temporary
    root to mode 0700; a server running as another user (PostgreSQL refuses
    root) then loses access to a data folder inside it.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="vv-storage-pg-"))
    server = PostgresServer(data_dir).start()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


async def _open(postgres, redis_client, app_name, FakeService):
    return await open_storage(ServiceKeys(app_name, "user"), redis_client, postgres.url(), FakeService())


async def _timed(awaitable) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        await awaitable
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


async def test_outage_hot_reads_work_and_writes_fail_fast(postgres, redis_client, app_name, FakeService):
    storage = await _open(postgres, redis_client, app_name, FakeService)
    user_id = await storage.records.add(login="ann")
    await storage.state.set("level", 1)

    stop_fast(postgres)
    write_s, write_error = await _timed(storage.records.add(login="bob"))
    cold_s, cold_error = await _timed(storage.records.get(user_id + 100))
    state_s, state_error = await _timed(storage.state.set("level", 2))

    assert (await storage.records.get(user_id))["login"] == "ann"
    assert await storage.state.get("level") == 1
    assert isinstance(write_error, StorageUnavailable)
    assert write_error.code == 503
    assert write_s < FAIL_FAST_S
    assert isinstance(cold_error, StorageUnavailable)
    assert cold_s < FAIL_FAST_S
    assert isinstance(state_error, StorageUnavailable)
    assert state_s < FAIL_FAST_S

    postgres.start()
    assert await storage.records.add(login="bob") > user_id
    await storage.state.set("level", 2)
    assert await storage.state.get("level") == 2
    await storage.close()
    assert await _connections_on(postgres.url(), app_name) == []


async def test_open_fails_fast_while_postgres_is_down(postgres, redis_client, app_name, FakeService):
    stop_fast(postgres)

    open_s, error = await _timed(_open(postgres, redis_client, app_name, FakeService))

    assert isinstance(error, StorageUnavailable)
    assert open_s < FAIL_FAST_S + 1.0


async def test_cancelled_writes_leak_no_connections(redis_client, app_name, database_url, FakeService):
    storage = await open_storage(ServiceKeys(app_name, "user"), redis_client, database_url, FakeService())
    user_id = await storage.records.add(login="ann")
    blocker = await asyncpg.connect(database_url)
    blocker_transaction = blocker.transaction()
    await blocker_transaction.start()
    await blocker.execute('SELECT * FROM "user" WHERE id = $1 FOR UPDATE', user_id)

    # The updates wait on the row lock; cancelling them is what a caller's timeout does.
    tasks = [asyncio.create_task(storage.records.update(user_id, level=index)) for index in range(3 * POOL_MAX_SIZE)]
    await asyncio.sleep(0.3)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await blocker_transaction.rollback()
    await blocker.close()

    assert storage.database.pool.get_size() <= POOL_MAX_SIZE
    assert (await storage.records.update(user_id, level=99))["level"] == 99
    active = await _wait_until_idle(database_url, app_name)
    assert active == []
    await storage.close()
    assert await _connections_on(database_url, app_name) == []


async def _connections_on(url: str, app_name: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(
            "SELECT pid, state FROM pg_stat_activity WHERE application_name = $1", f"vv:{app_name}.user"
        )
    finally:
        await connection.close()


async def _wait_until_idle(url: str, app_name: str, timeout_s: float = 3.0) -> list[asyncpg.Record]:
    """Return the storage's connections that are still not idle after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        busy = [row for row in await _connections_on(url, app_name) if row["state"] != "idle"]
        if not busy or time.monotonic() > deadline:
            return busy
        await asyncio.sleep(0.05)
