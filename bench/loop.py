"""Compare event loops: TCP echo and RPC round trips on asyncio, epoll and uvloop.

    python bench/loop.py [--duration SECONDS] [--rounds N] [--json]

Each measurement runs in a fresh child process that installs one loop, so the
loops never share state. Rounds alternate between loops, and the figure for a
loop is the median of its rounds, which evens out load from other processes.

- echo: one echo server and ``--connections`` clients in one process on the
  loop under test, written as asyncio protocols. Every client sends a
  ``--message-bytes`` message and sends the next one when the whole echo is
  back. ops_per_s is echoed messages per second. ``--raw-floor`` adds a row
  ``raw-epoll``: the same echo on raw sockets and ``select.epoll`` with no
  event loop, the least CPU that Python code needs for this work.
- rpc: vvkit RPC. A service with an ``echo`` method runs through
  ``vv.testing.run_service`` in the same process as ``--rpc-concurrency``
  callers, with Redis between them (rows marked ``variant: vv-rpc``).
  ops_per_s is completed calls per second. The Redis is the one at
  ``--redis-url``; when none responds to PING there, the parent process starts
  a private redis-server on a free loopback port, passes its URL to every
  child and stops it at the end.

Rows hold ops_per_s (wall clock), ops_per_cpu_s (per second of this
process's CPU time) and the user and system CPU microseconds per operation.
Client and server share one thread, so the CPU figures compare loops even
when other processes compete for the cores. The system part is the kernel's
TCP work, about the same for every loop, and the user part is what an event
loop written in Python can change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

LOOPS = ("asyncio", "epoll", "uvloop")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


# --- measurements, run inside the child process ---------------------------


class _Latencies:
    """Round-trip times of one measurement, and the time and CPU it took."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.samples: list[float] = []

    def start(self) -> None:
        self.started = time.perf_counter()
        self.usage = resource.getrusage(resource.RUSAGE_SELF)

    def stop(self) -> None:
        self.elapsed_s = time.perf_counter() - self.started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.user_s = usage.ru_utime - self.usage.ru_utime
        self.system_s = usage.ru_stime - self.usage.ru_stime

    def row(self, bench: str, impl: str, concurrency: int) -> dict:
        samples = sorted(self.samples)
        count = len(samples)
        return {
            "bench": bench,
            "impl": impl,
            "concurrency": concurrency,
            "ops": count,
            "ops_per_s": round(count / self.elapsed_s, 1),
            "ops_per_cpu_s": round(count / (self.user_s + self.system_s), 1),
            "user_us_per_op": round(self.user_s / count * 1e6, 2),
            "system_us_per_op": round(self.system_s / count * 1e6, 2),
            "p50_ms": round(samples[count // 2] * 1000, 3),
            "p99_ms": round(samples[min(count - 1, count * 99 // 100)] * 1000, 3),
        }


class _EchoServer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class _EchoClient(asyncio.Protocol):
    """Sends one message, waits for all of its bytes, sends the next."""

    def __init__(self, message: bytes, latencies: _Latencies, done: asyncio.Future) -> None:
        self.message = message
        self.latencies = latencies
        self.done = done
        self.received = 0

    def connection_made(self, transport):
        self.transport = transport
        self.send()

    def send(self) -> None:
        self.started = time.perf_counter()
        self.transport.write(self.message)

    def data_received(self, data):
        self.received += len(data)
        if self.received < len(self.message):
            return

        self.received = 0
        now = time.perf_counter()
        self.latencies.samples.append(now - self.started)
        if now < self.latencies.deadline:
            self.send()
        elif not self.done.done():
            self.done.set_result(None)
        else:
            self.transport.close()


async def measure_echo(impl: str, duration_s: float, connections: int, message_bytes: int) -> dict:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_EchoServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    message = os.urandom(message_bytes)
    latencies = _Latencies(deadline=time.perf_counter() + duration_s)
    finished = [loop.create_future() for _ in range(connections)]

    latencies.start()
    transports = []
    for done in finished:
        transport, _ = await loop.create_connection(
            lambda done=done: _EchoClient(message, latencies, done), "127.0.0.1", port
        )
        transports.append(transport)
    await asyncio.gather(*finished)
    latencies.stop()

    for transport in transports:
        transport.close()
    server.close()
    await server.wait_closed()
    return latencies.row("echo", impl, connections)


def measure_raw_echo(duration_s: float, connections: int, message_bytes: int) -> dict:
    """Echo with raw sockets and select.epoll, no event loop: the floor for Python code."""
    listener = socket.create_server(("127.0.0.1", 0))
    pairs = [_raw_pair(listener) for _ in range(connections)]
    poller = select.epoll()
    is_client = {}
    for client, server in pairs:
        for sock, client_side in ((client, True), (server, False)):
            poller.register(sock.fileno(), select.EPOLLIN)
            is_client[sock.fileno()] = (sock, client_side)

    message = os.urandom(message_bytes)
    latencies = _Latencies(deadline=time.perf_counter() + duration_s)
    _run_raw_echo(poller, is_client, pairs, message, latencies)

    poller.close()
    for client, server in pairs:
        client.close()
        server.close()
    listener.close()
    return latencies.row("echo", "raw-epoll", connections)


def _raw_pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    for sock in (client, server):
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, server


def _run_raw_echo(poller, is_client, pairs, message, latencies) -> None:
    buffer = bytearray(256 * 1024)
    view = memoryview(buffer)
    started = {}
    received = dict.fromkeys(is_client, 0)
    latencies.start()
    for client, _ in pairs:
        started[client.fileno()] = time.perf_counter()
        client.send(message)

    while started:
        for fd, _ in poller.poll(1.0):
            sock, client_side = is_client[fd]
            nbytes = sock.recv_into(buffer)
            if not client_side:
                sock.send(view[:nbytes].tobytes())
                continue
            received[fd] += nbytes
            if received[fd] < len(message) or fd not in started:
                continue
            received[fd] = 0
            now = time.perf_counter()
            latencies.samples.append(now - started[fd])
            if now < latencies.deadline:
                started[fd] = now
                sock.send(message)
            else:
                del started[fd]
    latencies.stop()


async def _call_repeatedly(call, latencies: _Latencies) -> None:
    while time.perf_counter() < latencies.deadline:
        started = time.perf_counter()
        await call()
        latencies.samples.append(time.perf_counter() - started)


async def measure_rpc(impl: str, duration_s: float, concurrency: int, redis_url: str) -> dict:
    from vv import Service, rpc
    from vv._transport import redacted
    from vv.testing import run_service

    class Echo(Service):
        @rpc()
        async def echo(self, value: int) -> int:
            return value

    app = f"bench-loop-{os.getpid()}"
    async with run_service(Echo, app=app, transport=redis_url) as service:
        await service.call("echo", value=0)
        latencies = _Latencies(deadline=time.perf_counter() + duration_s)

        latencies.start()
        calls = [_call_repeatedly(lambda: service.call("echo", value=1), latencies) for _ in range(concurrency)]
        await asyncio.gather(*calls)
        latencies.stop()

    await _delete_app_keys(redis_url, app)
    return latencies.row("rpc", impl, concurrency) | {"variant": "vv-rpc", "redis_url": redacted(redis_url)}


async def _delete_app_keys(redis_url: str, app: str) -> None:
    # Every key of a service carries "{<app>.<component>}", so the app name
    # finds all that the benchmark service left on the shared server.
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{{{app}.*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def run_child(args: argparse.Namespace) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runtime"))
    from vv.loop import install

    if args.impl == "raw-epoll":
        row = measure_raw_echo(args.duration, args.connections, args.message_bytes)
        print(json.dumps(row))
        return

    install(args.impl)
    if args.child == "echo":
        row = asyncio.run(measure_echo(args.impl, args.duration, args.connections, args.message_bytes))
    else:
        row = asyncio.run(measure_rpc(args.impl, args.duration, args.rpc_concurrency, args.redis_url))
    print(json.dumps(row))


# --- driver, run in the parent process -------------------------------------


def redis_responds(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def redis_for_bench(url: str) -> Iterator[str]:
    """Yield ``url`` when a Redis there responds to PING, else the URL of a private one, stopped on exit."""
    if redis_responds(url):
        yield url
        return

    from vv._transport import redacted
    from vvkit.local.servers import RedisServer

    with tempfile.TemporaryDirectory(prefix="vv-bench-loop-") as folder:
        server = RedisServer(Path(folder) / "redis").start()
        print(f"no Redis responded at {redacted(url)}; started a private redis-server at {server.url}", file=sys.stderr)
        try:
            yield server.url
        finally:
            server.stop()


def available_loops() -> list[str]:
    from vv.loop import available

    return [name for name in LOOPS if available(name)]


def measure_in_child(bench: str, impl: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, os.path.abspath(__file__), "--child", bench, "--impl", impl,
        "--duration", str(args.duration), "--connections", str(args.connections),
        "--message-bytes", str(args.message_bytes), "--rpc-concurrency", str(args.rpc_concurrency),
        "--redis-url", args.redis_url,
    ]  # fmt: skip
    timeout_s = args.duration * 3 + 60
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"bench {bench} on loop {impl} failed with exit status {completed.returncode}:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def median_rows(rounds: list[dict]) -> dict:
    """Return the round with the median ops_per_s, with every round's figure added."""
    ordered = sorted(rounds, key=lambda row: row["ops_per_s"])
    row = dict(ordered[len(ordered) // 2])
    row["rounds_ops_per_s"] = [round_row["ops_per_s"] for round_row in rounds]
    return row


def run_all(args: argparse.Namespace) -> list[dict]:
    loops = available_loops()
    rows = []
    for bench in ("echo", "rpc"):
        rounds: dict[str, list[dict]] = {impl: [] for impl in loops}
        for _ in range(args.rounds):
            for impl in loops:
                rounds[impl].append(measure_in_child(bench, impl, args))
        rows.extend(median_rows(rounds[impl]) for impl in loops)
        if bench == "echo" and args.raw_floor:
            rows.append(median_rows([measure_in_child("echo", "raw-epoll", args) for _ in range(args.rounds)]))
    return rows


def _ratio(rows: list[dict], row: dict, impl: str, key: str) -> str:
    base = next(
        (
            other[key]
            for other in rows
            if (other["bench"], other["impl"]) == (row["bench"], impl)
        ),
        None,
    )
    return f"{row[key] / base:.2f}x" if base else "-"


def print_table(rows: list[dict]) -> None:
    print(
        f"{'bench':6} {'impl':9} {'conc':>4} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'user us/op':>10} "
        f"{'sys us/op':>9} {'vs asyncio':>10} {'(cpu)':>6} {'vs uvloop':>9} {'(cpu)':>6}"
    )
    for row in rows:
        print(
            f"{row['bench']:6} {row['impl']:9} {row['concurrency']:>4} {row['ops_per_s']:>9.0f} "
            f"{row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['user_us_per_op']:>10.2f} {row['system_us_per_op']:>9.2f} "
            f"{_ratio(rows, row, 'asyncio', 'ops_per_s'):>10} {_ratio(rows, row, 'asyncio', 'ops_per_cpu_s'):>6} "
            f"{_ratio(rows, row, 'uvloop', 'ops_per_s'):>9} {_ratio(rows, row, 'uvloop', 'ops_per_cpu_s'):>6}"
        )
    redis_urls = {row["redis_url"] for row in rows if row["bench"] == "rpc"}
    print(
        f"rpc: vvkit RPC, an echo method run by vv.testing.run_service, Redis at {', '.join(sorted(redis_urls))}; "
        f"cores: {os.cpu_count()}; median of rounds"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per loop, benchmark and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per loop; the median round is reported")
    parser.add_argument("--json", action="store_true", help="print one JSON array on stdout")
    parser.add_argument("--connections", type=int, default=64, help="echo connections")
    parser.add_argument("--message-bytes", type=int, default=1024, help="echo message size in bytes")
    parser.add_argument("--rpc-concurrency", type=int, default=32, help="concurrent RPC callers")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("VV_TEST_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis for the rpc bench; when none responds there, a private redis-server is started instead",
    )
    parser.add_argument("--child", choices=("echo", "rpc"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--raw-floor",
        action="store_true",
        help="add an echo row 'raw-epoll': raw sockets on select.epoll without an event loop, as a floor",
    )
    parser.add_argument("--impl", choices=(*LOOPS, "raw-epoll"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.child:
        run_child(args)
        return

    with redis_for_bench(args.redis_url) as redis_url:
        args.redis_url = redis_url
        rows = run_all(args)
    if args.json:
        print(json.dumps(rows))
    else:
        print_table(rows)


if __name__ == "__main__":
    main()
