"""The shared fixtures give each test real, isolated servers."""

import asyncio

import asyncpg
import redis


def test_redis_url_answers_ping(redis_url):
    client = redis.Redis.from_url(redis_url)
    assert client.ping() is True
    client.close()


def test_database_url_is_fresh_database(database_url):
    async def count_tables():
        connection = await asyncpg.connect(database_url)
        try:
            return await connection.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            )
        finally:
            await connection.close()

    assert asyncio.run(count_tables()) == 0


def test_private_redis_server_stops(redis_server_factory):
    server = redis_server_factory()
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()
    server.stop()
    assert server.process is None


def test_private_postgres_server_runs(postgres_server_factory):
    server = postgres_server_factory()

    async def version():
        connection = await asyncpg.connect(server.url())
        try:
            return await connection.fetchval("SHOW server_version")
        finally:
            await connection.close()

    assert asyncio.run(version())
