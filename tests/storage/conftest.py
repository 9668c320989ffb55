"""Fixtures for storage tests: a Storage on real Redis and PostgreSQL.

The service side (events and RPC calls) is a recording fake here, because
these tests exercise the storage alone. Tests that run a real Service live
in test_service.py.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio

from vv._errors import NotFound
from vv._keys import ServiceKeys
from vv.storage import Entity, Field, Storage, open_storage

USER = Entity(
    "user",
    {
        "login": Field(str, required=True, unique=True),
        "password": Field(str, hashed=True),
        "name": Field(str),
        "level": Field(int, default=0),
        "score": Field(float),
        "active": Field(bool),
        "extra": Field(object),
    },
)


class FakeService:
    """Record emitted events and serve ``_record_get`` calls from other storages."""

    def __init__(self, entity: Entity | None = USER) -> None:
        self.entity = entity
        self.events: list[tuple[str, dict]] = []
        self.owners: dict[str, Storage] = {}
        self.calls: list[tuple[str, str, tuple]] = []

    async def emit(self, event: str, payload: dict) -> None:
        self.events.append((event, payload))

    async def call(self, component: str, method: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((component, method, args))
        owner = self.owners.get(component)
        if owner is None or method != "_record_get":
            raise NotFound(f"service {component} not found")
        return await owner.records.get(*args)


@pytest.fixture(name="FakeService")
def fake_service_class() -> type[FakeService]:
    """The FakeService class, for tests that declare their own entity."""
    return FakeService


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def open_user_storage(
    redis_client: redis.asyncio.Redis, app_name: str, database_url: str
) -> AsyncIterator[Callable[..., Any]]:
    """Open Storage objects for component 'user' of the test's app; all are closed afterwards."""
    opened: list[Storage] = []

    async def open_one(service: FakeService | None = None, component: str = "user", client: Any = None) -> Storage:
        storage = await open_storage(
            ServiceKeys(app_name, component), client or redis_client, database_url, service or FakeService()
        )
        opened.append(storage)
        return storage

    yield open_one
    for storage in opened:
        await storage.close()


@pytest.fixture
async def storage(open_user_storage: Callable[..., Any]) -> Storage:
    return await open_user_storage()


@pytest.fixture
async def private_redis(redis_server_factory) -> AsyncIterator[tuple[Any, redis.asyncio.Redis]]:
    """A private redis-server that the test may pause, flush or stop, and a client of it."""
    server = redis_server_factory()
    client = redis.asyncio.Redis.from_url(server.url)
    yield server, client
    await client.aclose()


@pytest.fixture
def stop_postgres_fast() -> Callable[[Any], None]:
    """Return a function that stops a PostgresServer with SIGINT (fast shutdown).

    A fast shutdown closes client sessions at once, while SIGTERM requests a
    smart shutdown, which waits for the pool's idle connections to disconnect.
    """

    def stop(server: Any) -> None:
        server.process.send_signal(signal.SIGINT)
        server.process.wait(timeout=30)
        server.process = None

    return stop
