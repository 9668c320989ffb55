"""redis-py, asyncpg and aiohttp unchanged on the epoll loop, against real servers."""

from __future__ import annotations

import asyncio

import aiohttp
import aiohttp.web
import asyncpg
import pytest
import redis.asyncio

from vv.loop import new_event_loop


@pytest.fixture
def epoll_loop():
    loop = new_event_loop("epoll")
    yield loop
    loop.close()


def test_redis_py(epoll_loop, redis_url, app_name):
    async def main():
        client = redis.asyncio.Redis.from_url(redis_url)
        key = f"{{{app_name}}}:loop-test"
        try:
            await client.set(key, b"on epoll")
            values = await asyncio.gather(*(client.get(key) for _ in range(50)))
            pipeline = client.pipeline()
            pipeline.incr(key + ":n").incr(key + ":n")
            counts = await pipeline.execute()
            await client.delete(key, key + ":n")
            return values, counts
        finally:
            await client.aclose()

    values, counts = epoll_loop.run_until_complete(main())
    assert values == [b"on epoll"] * 50
    assert counts == [1, 2]


def test_asyncpg(epoll_loop, database_url):
    async def main():
        pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
        try:
            async with pool.acquire() as connection:
                await connection.execute("CREATE TABLE loop_test (id int PRIMARY KEY, name text)")
                await connection.executemany("INSERT INTO loop_test VALUES ($1, $2)", [(1, "a"), (2, "b")])
            rows = await asyncio.gather(*(pool.fetchval("SELECT count(*) FROM loop_test") for _ in range(10)))
            return rows
        finally:
            await pool.close()

    assert epoll_loop.run_until_complete(main()) == [2] * 10


def test_aiohttp_server_and_client(epoll_loop):
    async def hello(request):
        return aiohttp.web.json_response({"name": request.query.get("name"), "loop": type(asyncio.get_running_loop()).__name__})

    async def main():
        app = aiohttp.web.Application()
        app.router.add_get("/hello", hello)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/hello", params={"name": "vv"}) as response:
                    return response.status, await response.json()
        finally:
            await runner.cleanup()

    status, body = epoll_loop.run_until_complete(main())
    assert status == 200
    assert body == {"name": "vv", "loop": "EpollEventLoop"}
