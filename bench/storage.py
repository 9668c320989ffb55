"""Benchmark the storage: hot reads, cold reads and adds, next to plain redis-py and asyncpg.

Usage: python bench/storage.py [--duration SECONDS] [--json]

Starts a private Redis and a private PostgreSQL (fsync off) on free loopback
ports and stops them at the end. Each row runs one implementation at one
concurrency (1 or 32 tasks) for the given duration, in slices that take
turns with the other implementations:

    vvkit-hot        Records.get of a record whose copy is in Redis
    vvkit-cold       Records.get of a record missing from Redis (PostgreSQL read, Redis refill)
    vvkit-add        Records.add: PostgreSQL INSERT, then one Redis script that writes the
                     copy and appends the record event
    redis-hgetall    redis-py HGETALL of a hash with the same fields (the hot floor)
    asyncpg-select   asyncpg SELECT by primary key (the cold floor)
    asyncpg-insert   asyncpg INSERT ... RETURNING id through a pool with asyncpg's defaults
                     (the add floor)
    asyncpg-insert-noreset
                     the same INSERT through a pool that skips asyncpg's reset query on
                     release, as the vvkit pool does: one round trip instead of two

The storage belongs to an instance of a Service subclass that is never
run, so record events take the path of a running service: the write script
appends them to the service's event stream. The storage's Redis client and
limits are the ones a running service gives it (``connect(..., storage=True)``),
while the floors use a plain redis-py client. A cold row stops early when it
runs out of records that are not in Redis; its ops_per_s counts only the
time it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio

from vv import Service, TransportSettings
from vv._transport import close_client, connect, storage_connections
from vv.storage import Entity, Field, open_storage
from vv.storage.postgres import _keep_session
from vvkit.local.servers import PostgresServer, RedisServer

CONCURRENCIES = (1, 32)
ROUNDS = 5
# Records loaded for the hot and cold reads; cold reads use each one once per refill round.
PRELOADED_RECORDS = 20_000
ENTITY = Entity(
    "member",
    {
        "login": Field(str, required=True, unique=True),
        "name": Field(str),
        "level": Field(int),
        "score": Field(float),
        "active": Field(bool),
    },
)
SAMPLE = {"name": "Ann Example", "level": 3, "score": 0.25, "active": True}
EVENTS_MAXLEN = 10_000


class Member(Service):
    """The service that owns the bench's storage; the bench never runs it."""

    entity = ENTITY


@dataclass
class Sample:
    """Latencies and running time of one implementation, summed over rounds."""

    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    stopped_early: bool = False


async def measure(operation: Callable[[], Awaitable[Any]], concurrency: int, duration_s: float, sample: Sample) -> None:
    """Run ``operation`` from ``concurrency`` tasks for ``duration_s``, adding to ``sample``."""
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await operation()
            except StopAsyncIteration:
                sample.stopped_early = True
                return
            sample.latencies_s.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sample.elapsed_s += time.perf_counter() - started


def summarize(latencies_s: list[float], elapsed_s: float, stopped_early: bool) -> dict:
    ordered = sorted(latencies_s)
    p99_index = max(0, int(len(ordered) * 0.99) - 1)
    return {
        "ops": len(ordered),
        "ops_per_s": round(len(ordered) / elapsed_s, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 3) if ordered else None,
        "p99_ms": round(ordered[p99_index] * 1000, 3) if ordered else None,
        "stopped_early": stopped_early,
    }


class Bench:
    """The servers, clients and operations of one benchmark run."""

    def __init__(self, redis_url: str, database_url: str) -> None:
        self.redis_url = redis_url
        self.database_url = database_url
        settings = dataclasses.replace(TransportSettings.from_env(), max_events_len=EVENTS_MAXLEN)
        self.service = Member(app="bench", transport=redis_url, settings=settings)
        self.keys = self.service.keys
        self.counter = itertools.count()

    async def open(self) -> None:
        self.redis = redis.asyncio.Redis.from_url(self.redis_url, max_connections=64)
        settings = self.service.settings
        self.storage_redis = connect(self.redis_url, cluster=False, settings=settings, storage=True)
        self.storage = await open_storage(
            self.keys, self.storage_redis, self.database_url, self.service,
            redis_timeout_s=settings.socket_timeout_s, redis_max_reads=storage_connections(settings) - 1,
        )
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=10)
        self.pool_noreset = await asyncpg.create_pool(
            self.database_url, min_size=1, max_size=10, reset=_keep_session
        )
        await self.pool.execute(
            "CREATE TABLE plain (id bigserial PRIMARY KEY, login text UNIQUE, name text, level bigint,"
            " score double precision, active boolean)"
        )
        await self.preload()

    async def close(self) -> None:
        await self.storage.close()
        await close_client(self.storage_redis)
        await self.pool.close()
        await self.pool_noreset.close()
        await self.redis.aclose()
        await self.service.redis.aclose()

    async def preload(self) -> None:
        rows = [(f"pre{index}", *SAMPLE.values()) for index in range(PRELOADED_RECORDS)]
        columns = ["login", "name", "level", "score", "active"]
        await self.pool.copy_records_to_table("plain", records=rows, columns=columns)
        await self.pool.execute(
            'INSERT INTO member (login, _key_login, name, level, score, active, _version) '
            "SELECT login, lower(login), name, level, score, active, nextval('vv_versions') FROM plain"
        )
        self.ids = [row[0] for row in await self.pool.fetch("SELECT id FROM member ORDER BY id")]
        self.hot_id = self.ids[0]
        await self.storage.records.get(self.hot_id)
        await self.redis.hset("plain:1", mapping={"id": 1, "login": "pre0", **{k: str(v) for k, v in SAMPLE.items()}})

    async def drop_hot_copies(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for record_id in self.ids:
                pipe.delete(self.keys.record(record_id))
            await pipe.execute()
        self.cold_ids = iter(self.ids)

    def operations(self) -> dict[str, Callable[[], Awaitable[Any]]]:
        return {
            "redis-hgetall": lambda: self.redis.hgetall("plain:1"),
            "vvkit-hot": lambda: self.storage.records.get(self.hot_id),
            "asyncpg-select": lambda: self.pool.fetchrow("SELECT * FROM plain WHERE id = $1", 1),
            "vvkit-cold": self.cold_read,
            "asyncpg-insert": lambda: self.pool.fetchval(
                "INSERT INTO plain (login, name, level, score, active) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                f"p{next(self.counter)}", *SAMPLE.values(),
            ),
            "asyncpg-insert-noreset": lambda: self.pool_noreset.fetchval(
                "INSERT INTO plain (login, name, level, score, active) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                f"n{next(self.counter)}", *SAMPLE.values(),
            ),
            "vvkit-add": lambda: self.storage.records.add(login=f"v{next(self.counter)}", **SAMPLE),
        }

    async def cold_read(self) -> None:
        record_id = next(self.cold_ids, None)
        if record_id is None:
            raise StopAsyncIteration
        await self.storage.records.get(record_id)

    async def run(self, duration_s: float) -> list[dict]:
        """Measure every implementation at each concurrency; return the result rows.

        The implementations take turns in ROUNDS short slices, so a change in
        the machine's load during the run affects all of them alike.
        """
        rows = []
        for concurrency in CONCURRENCIES:
            await self.drop_hot_copies()
            samples = {impl: Sample() for impl in self.operations()}
            for _ in range(ROUNDS):
                for impl, operation in self.operations().items():
                    await measure(operation, concurrency, duration_s / ROUNDS, samples[impl])
            for impl, sample in samples.items():
                summary = summarize(sample.latencies_s, sample.elapsed_s, sample.stopped_early)
                rows.append({"bench": "storage", "impl": impl, "concurrency": concurrency, **summary})
                print(format_row(rows[-1]), file=sys.stderr)
        return rows


def format_row(row: dict) -> str:
    return (
        f"{row['impl']:<22} c={row['concurrency']:<3} {row['ops_per_s']:>10.1f} ops/s "
        f"p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms{'  (ran out of cold records)' if row['stopped_early'] else ''}"
    )


def print_ratios(rows: list[dict]) -> None:
    """Print the ops/s ratios that the storage goals are stated in."""
    rate = {(row["impl"], row["concurrency"]): row["ops_per_s"] for row in rows}
    for concurrency in CONCURRENCIES:
        hot = rate[("vvkit-hot", concurrency)]
        hot_vs_redis = hot / rate[("redis-hgetall", concurrency)]
        hot_vs_postgres = hot / rate[("asyncpg-select", concurrency)]
        add_cost = rate[("asyncpg-insert", concurrency)] / rate[("vvkit-add", concurrency)]
        add_cost_noreset = rate[("asyncpg-insert-noreset", concurrency)] / rate[("vvkit-add", concurrency)]
        print(
            f"c={concurrency}: vvkit-hot is {hot_vs_redis:.2f}x redis-hgetall and {hot_vs_postgres:.2f}x "
            f"asyncpg-select; vvkit-add takes {add_cost:.2f}x the time of asyncpg-insert "
            f"and {add_cost_noreset:.2f}x that of asyncpg-insert-noreset",
            file=sys.stderr,
        )


async def main_async(duration_s: float) -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="vv-bench-storage-"))
    redis_server = RedisServer(folder / "redis").start()
    postgres_server = PostgresServer(folder / "postgres").start()
    bench = None
    try:
        database = "bench_" + uuid.uuid4().hex[:8]
        admin = await asyncpg.connect(postgres_server.url())
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        bench = Bench(redis_server.url, postgres_server.url(database))
        await bench.open()
        return await bench.run(duration_s)
    finally:
        if bench is not None:
            await bench.close()
        redis_server.stop()
        postgres_server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per implementation and concurrency")
    parser.add_argument("--json", action="store_true", help="print one JSON array of result rows on stdout")
    args = parser.parse_args()

    rows = asyncio.run(main_async(args.duration))
    print_ratios(rows)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
