"""Compare vvkit RPC with a hand-written Redis streams round trip.

    python bench/rpc.py [--duration SECONDS] [--json] [--rounds 3] [--concurrency 1,64] [--loop asyncio]
                        [--redis URL]

Both implementations run a server process and a caller process on loopback,
against a private redis-server on a free port (or ``--redis``), with redis-py
and hiredis, on the default asyncio event loop unless ``--loop uvloop``:

- ``floor``: the least work any RPC over Redis streams does, written plainly.
  Each caller coroutine XADDs a request naming its own reply list and waits
  with BLPOP on that list. The server reads with XREADGROUP (COUNT 100) and
  handles each request in its own task, which LPUSHes the reply and then
  XACKs the entry, one round trip each, with no pipelining or batching.
- ``vvkit``: ``vv.Client.call`` on an ``echo`` method of a ``vv.Service``
  served by ``ServiceRunner``, the same code that ``vv-start`` runs.

``--concurrency`` is the number of caller coroutines in the caller process,
each making one call after another. A round starts a fresh server process,
warms up for a second, then counts calls completed within ``--duration``
seconds and their latencies; each row contains the medians of ``--rounds``
rounds. The CPU columns are microseconds of process CPU time per call
(warm-up included; the server's also includes its idle time between
rounds' start and end). The figures depend on the machine and on what else
runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

DEFAULT_CONCURRENCY = "1,64"
WARMUP_S = 1.0
FLOOR_STREAM = "bench:floor:requests"
FLOOR_GROUP = "bench-floor"
# How long the server process may take to start reading requests.
SERVER_START_TIMEOUT_S = 30.0


# --- servers, each run in its own process --------------------------------


async def serve_floor(redis_url: str) -> None:
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=256)
    client = aioredis.Redis(connection_pool=pool)
    try:
        await client.xgroup_create(FLOOR_STREAM, FLOOR_GROUP, id="$", mkstream=True)
    except aioredis.ResponseError:
        pass
    tasks: set[asyncio.Task] = set()

    async def answer(entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        await client.lpush(fields[b"reply"], fields[b"body"])
        await client.xack(FLOOR_STREAM, FLOOR_GROUP, entry_id)

    print("ready", flush=True)
    while True:
        reply = await client.xreadgroup(FLOOR_GROUP, "server", {FLOOR_STREAM: ">"}, count=100, block=1000)
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                task = asyncio.create_task(answer(entry_id, fields))
                tasks.add(task)
                task.add_done_callback(tasks.discard)


async def serve_vvkit(redis_url: str, app: str) -> None:
    from vv import Service, rpc
    from vv._service import ServiceRunner

    class Echo(Service):
        @rpc
        async def echo(self, value: object) -> object:
            return value

    runner = ServiceRunner(Echo(app=app, transport=redis_url))
    await runner.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# --- callers -------------------------------------------------------------


class Recorder:
    """Latencies of the calls that finished inside the measured window."""

    def __init__(self, start_s: float, end_s: float) -> None:
        self.start_s = start_s
        self.end_s = end_s
        self.samples_s: list[float] = []
        # Every call, warm-up included, and the CPU time they took.
        self.total_calls = 0
        self.cpu_start_s = time.process_time()

    def record(self, sent_s: float, done_s: float) -> None:
        if self.start_s <= sent_s and done_s <= self.end_s:
            self.samples_s.append(done_s - sent_s)

    def row(self, impl: str, concurrency: int) -> dict:
        samples = sorted(self.samples_s)
        count = len(samples)
        window_s = self.end_s - self.start_s
        return {
            "bench": "rpc",
            "impl": impl,
            "concurrency": concurrency,
            "calls": count,
            "ops_per_s": round(count / window_s, 1),
            "p50_ms": round(samples[count // 2] * 1000, 3) if count else None,
            "p99_ms": round(samples[min(count - 1, int(count * 0.99))] * 1000, 3) if count else None,
            "caller_cpu_us_per_call": round((time.process_time() - self.cpu_start_s) * 1e6
                                            / max(1, self.total_calls), 1),
            "total_calls": self.total_calls,
        }


async def drive(call, concurrency: int, duration_s: float) -> Recorder:
    now_s = time.perf_counter()
    recorder = Recorder(now_s + WARMUP_S, now_s + WARMUP_S + duration_s)

    async def caller(index: int) -> None:
        n = 0
        while True:
            sent_s = time.perf_counter()
            if sent_s > recorder.end_s:
                return
            result = await call(index, n)
            if result != n:
                raise AssertionError(f"caller {index} got {result!r} for call {n}")
            recorder.record(sent_s, time.perf_counter())
            recorder.total_calls += 1
            n += 1

    await asyncio.gather(*(caller(index) for index in range(concurrency)))
    return recorder


async def call_floor(redis_url: str, concurrency: int, duration_s: float) -> dict:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, max_connections=2 * concurrency + 4)
    prefix = f"bench:floor:reply:{uuid.uuid4().hex}"

    async def call(index: int, n: int) -> int:
        reply_key = f"{prefix}:{index}"
        await client.xadd(FLOOR_STREAM, {"reply": reply_key, "body": str(n)})
        _key, body = await client.blpop([reply_key], timeout=10)
        return int(body)

    try:
        recorder = await drive(call, concurrency, duration_s)
    finally:
        await client.aclose()
    return recorder.row("floor", concurrency)


async def call_vvkit(redis_url: str, app: str, concurrency: int, duration_s: float) -> dict:
    from vv import Client

    async with Client(redis_url, app=app) as client:
        async def call(index: int, n: int) -> int:
            return await client.call("echo", "echo", args=[n], timeout=10)

        recorder = await drive(call, concurrency, duration_s)
    return recorder.row("vvkit", concurrency)


# --- orchestration -------------------------------------------------------


def start_server(impl: str, redis_url: str, app: str, loop: str) -> subprocess.Popen:
    command = [sys.executable, __file__, "--role", "server", "--impl", impl, "--redis", redis_url, "--app", app,
               "--loop", loop]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    deadline_s = time.monotonic() + SERVER_START_TIMEOUT_S
    line = process.stdout.readline()
    if line.strip() != "ready" or time.monotonic() > deadline_s:
        process.kill()
        raise RuntimeError(f"{impl} server did not start: {line!r}")
    return process


def run_caller(impl: str, redis_url: str, app: str, concurrency: int, duration_s: float, loop: str) -> dict:
    command = [sys.executable, __file__, "--role", "caller", "--impl", impl, "--redis", redis_url, "--app", app,
               "--concurrency", str(concurrency), "--duration", str(duration_s), "--loop", loop]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60)
    if result.returncode != 0:
        raise RuntimeError(f"{impl} caller failed:\n{result.stderr}")
    return json.loads(result.stdout)


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time of a process (Linux /proc), or NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(impl: str, redis_url: str, concurrency: int, duration_s: float, loop: str) -> dict:
    app = f"bench-{uuid.uuid4().hex[:8]}"
    server = start_server(impl, redis_url, app, loop)
    try:
        cpu_before_s = cpu_seconds(server.pid)
        row = run_caller(impl, redis_url, app, concurrency, duration_s, loop)
        server_cpu_s = cpu_seconds(server.pid) - cpu_before_s
    finally:
        server.kill()
        server.wait()
    row["server_cpu_us_per_call"] = round(server_cpu_s * 1e6 / max(1, row.pop("total_calls")), 1)
    row["loop"] = loop
    return row


def median_row(rounds: list[dict]) -> dict:
    """Combine rounds of one measurement: the median of each figure, and the round count."""
    row = dict(rounds[0])
    for key, value in rounds[0].items():
        if isinstance(value, float) and key != "concurrency":
            row[key] = statistics.median(r[key] for r in rounds)
    row["calls"] = sum(r["calls"] for r in rounds)
    row["rounds"] = len(rounds)
    return row


def print_table(rows: list[dict]) -> None:
    floor = {row["concurrency"]: row for row in rows if row["impl"] == "floor"}
    print(f"{'impl':<6} {'conc':>4} {'calls/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs floor calls/s':>17} "
          f"{'vs floor p50':>13} {'CPU us/call caller':>19} {'server':>7}")
    for row in rows:
        base = floor.get(row["concurrency"])
        speed = f"{row['ops_per_s'] / base['ops_per_s']:.2f}x" if base else "-"
        p50 = f"{row['p50_ms'] / base['p50_ms']:.2f}x" if base and row["p50_ms"] else "-"
        print(f"{row['impl']:<6} {row['concurrency']:>4} {row['ops_per_s']:>10.0f} {row['p50_ms']:>8.3f} "
              f"{row['p99_ms']:>8.3f} {speed:>17} {p50:>13} {row['caller_cpu_us_per_call']:>19.0f} "
              f"{row['server_cpu_us_per_call']:>7.0f}")


def run_all(args: argparse.Namespace) -> list[dict]:
    concurrencies = [int(part) for part in args.concurrency.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="vv-bench-rpc-") as folder:
        server = None
        redis_url = args.redis
        if redis_url is None:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            from vvkit.local.servers import RedisServer

            server = RedisServer(Path(folder) / "redis").start()
            redis_url = server.url
        try:
            for concurrency in concurrencies:
                # Rounds alternate between the implementations so that load
                # from other processes drifting over time hits both alike.
                rounds: dict[str, list[dict]] = {"floor": [], "vvkit": []}
                for _ in range(args.rounds):
                    for impl, measured in rounds.items():
                        measured.append(measure(impl, redis_url, concurrency, args.duration, args.loop))
                rows += [median_row(measured) for measured in rounds.values()]
        finally:
            if server is not None:
                server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="vvkit RPC against a hand-written Redis streams round trip.")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per row (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON array instead of a table")
    parser.add_argument("--concurrency", default=DEFAULT_CONCURRENCY,
                        help=f"comma-separated caller counts (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurements per row; the row shows their medians (default 3)")
    parser.add_argument("--redis", default=None, help="use this Redis URL instead of starting a private server")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="event loop of every server and caller process (default asyncio)")
    parser.add_argument("--role", choices=("server", "caller"), help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=("floor", "vvkit"), help=argparse.SUPPRESS)
    parser.add_argument("--app", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role is not None and args.loop == "uvloop":
        import uvloop

        uvloop.install()
    if args.role == "server":
        serve = serve_floor(args.redis) if args.impl == "floor" else serve_vvkit(args.redis, args.app)
        asyncio.run(serve)
    elif args.role == "caller":
        concurrency = int(args.concurrency)
        if args.impl == "floor":
            row = asyncio.run(call_floor(args.redis, concurrency, args.duration))
        else:
            row = asyncio.run(call_vvkit(args.redis, args.app, concurrency, args.duration))
        print(json.dumps(row))
    else:
        rows = run_all(args)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print_table(rows)


if __name__ == "__main__":
    main()
