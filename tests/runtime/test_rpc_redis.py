"""The transport against Redis servers that restart, idle connections and Redis Cluster."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time

import pytest
import redis
import redis.asyncio as aioredis

from vv import Client, RemoteError, Service, TransportError, rpc, subscribe
from vv.testing import run_service
from vvkit.local.servers import start_cluster


class Echo(Service):
    @rpc
    async def echo(self, value: object) -> object:
        return value


class Counter(Service):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: list[int] = []

    @subscribe("echo", "ping")
    async def on_ping(self, event: dict) -> None:
        self.seen.append(event["n"])


async def call_until_ok(svc, deadline_s: float) -> float:
    """Call until one call succeeds; return the seconds that took."""
    started = time.monotonic()
    while True:
        try:
            await svc.call("echo", "ok", timeout=0.5)
            return time.monotonic() - started
        except (RemoteError, TransportError):
            if time.monotonic() - started > deadline_s:
                raise
            await asyncio.sleep(0.05)


async def test_service_resumes_after_redis_restart_without_data(redis_server_factory, app_name, caplog):
    server = redis_server_factory()
    async with run_service(Echo, app=app_name, transport=server.url, backoff_max_s=0.5) as svc:
        load_results: list[object] = []

        async def load() -> None:
            while True:
                try:
                    load_results.append(await svc.call("echo", len(load_results), timeout=0.5))
                except (RemoteError, TransportError) as exc:
                    load_results.append(exc)
                await asyncio.sleep(0.01)

        loader = asyncio.create_task(load())
        await asyncio.sleep(0.5)
        with caplog.at_level(logging.WARNING, logger="vv"):
            await asyncio.to_thread(server.restart)
            recovery_s = await call_until_ok(svc, deadline_s=10.0)
            await asyncio.sleep(1.0)
        loader.cancel()
        await asyncio.gather(loader, return_exceptions=True)
        after = await svc.call("echo", "after", timeout=2)

    ok_before = [r for r in load_results if not isinstance(r, Exception)]
    assert after == "after"
    assert recovery_s < 5.0
    assert ok_before
    assert not isinstance(load_results[-1], Exception)
    # About one "unreachable" line per second at most, however many loops notice it.
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) <= 3 + recovery_s


async def test_idle_service_keeps_connections(redis_server_factory, app_name, caplog):
    server = redis_server_factory()
    raw = aioredis.Redis.from_url(server.url)
    settings = {"socket_timeout_s": 1.0, "block_ms": 500}
    try:
        async with run_service(Echo, app=app_name, transport=server.url, **settings) as svc:
            await svc.call("echo", 1)
            before = {c["id"] for c in await raw.client_list()}
            with caplog.at_level(logging.WARNING, logger="vv"):
                await asyncio.sleep(4.0)
            after = {c["id"] for c in await raw.client_list()}
            started = time.monotonic()
            assert await svc.call("echo", 2) == 2
            elapsed_s = time.monotonic() - started
    finally:
        await raw.aclose()

    assert before == after
    assert elapsed_s < 0.2
    assert [r.getMessage() for r in caplog.records] == []


def wait_all_nodes_ok(nodes, timeout_s: float = 20.0) -> None:
    """Wait until every node, not only the first, reports the cluster as ok."""
    deadline = time.monotonic() + timeout_s
    for node in nodes:
        client = redis.Redis.from_url(node.url)
        try:
            while client.cluster("info")["cluster_state"] != "ok":
                assert time.monotonic() < deadline, f"node {node.port} never reported cluster_state ok"
                time.sleep(0.05)
        finally:
            client.close()


@pytest.fixture
def cluster_url(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not found; the cluster test needs it")
    nodes = start_cluster(tmp_path / "cluster", masters=3)
    try:
        wait_all_nodes_ok(nodes)
        yield nodes[0].url
    finally:
        for node in nodes:
            node.stop()


@pytest.mark.cluster
async def test_cluster_rpc_and_events(cluster_url, app_name):
    other_app = app_name + "-b"
    async with run_service(Echo, app=app_name, transport=cluster_url, cluster=True) as echo, \
            run_service(Echo, app=other_app, transport=cluster_url, cluster=True) as other, \
            run_service(Counter, app=app_name, transport=cluster_url, cluster=True) as counter:
        results = await asyncio.gather(*(echo.call("echo", n) for n in range(200)))
        across = await echo.service.call(f"{other_app}.echo", "echo", "hi")
        for n in range(10):
            await echo.service.emit("ping", {"n": n})
        deadline = time.monotonic() + 5
        while len(counter.service.seen) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        async with Client(cluster_url, cluster=True) as client:
            via_client = await client.call(f"{other_app}.echo", "echo", args=[[1, 2]])

    assert results == list(range(200))
    assert across == "hi"
    assert via_client == [1, 2]
    assert sorted(counter.service.seen) == list(range(10))
    assert other.service.service_id == f"{other_app}.echo"


async def test_acl_user_in_uri(redis_server_factory, app_name):
    server = redis_server_factory()
    admin = aioredis.Redis.from_url(server.url)
    try:
        await admin.execute_command("ACL", "SETUSER", "svc", "on", ">s3cret", "~*", "&*", "+@all")
        await admin.execute_command("ACL", "SETUSER", "default", "off")
    finally:
        await admin.aclose()
    url = f"redis://svc:s3cret@127.0.0.1:{server.port}/0"

    async with run_service(Echo, app=app_name, transport=url) as svc:
        result = await svc.call("echo", "through ACL")

    assert result == "through ACL"


def move_slot(nodes, slot: int) -> int:
    """Migrate one hash slot, with its keys, to another master, as a reshard does; return its index."""
    clients = [redis.Redis.from_url(node.url) for node in nodes]
    try:
        ids = [client.execute_command("CLUSTER", "MYID") for client in clients]
        owner = next(i for i, client in enumerate(clients)
                     if client.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) or _owns(client, slot))
        target = (owner + 1) % len(clients)
        source, destination = clients[owner], clients[target]
        destination.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner])
        source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            source.execute_command("MIGRATE", "127.0.0.1", nodes[target].port, "", 0, 5000, "KEYS", *keys)
        for client in clients:
            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        return target
    finally:
        for client in clients:
            client.close()


def _owns(client, slot: int) -> bool:
    myid = client.execute_command("CLUSTER", "MYID")
    for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return master[2] == myid if len(master) > 2 else False
    return False


@pytest.mark.cluster
async def test_cluster_calls_survive_slot_migration(tmp_path, app_name):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not found; the cluster test needs it")
    nodes = start_cluster(tmp_path / "cluster", masters=3)
    try:
        wait_all_nodes_ok(nodes)
        url = nodes[0].url
        async with run_service(Echo, app=app_name, transport=url, cluster=True) as svc:
            assert await svc.call("echo", 0) == 0
            slot = redis.Redis.from_url(url).execute_command("CLUSTER", "KEYSLOT", svc.service.keys.requests)
            results: list[object] = []

            async def load() -> None:
                for n in range(1, 400):
                    try:
                        results.append(await svc.call("echo", n, timeout=5))
                    except Exception as exc:  # noqa: BLE001 - every failure is counted below
                        results.append(exc)

            loader = asyncio.create_task(load())
            await asyncio.sleep(0.1)
            load_running = not loader.done()
            target = await asyncio.to_thread(move_slot, nodes, slot)
            await loader
            after = await svc.call("echo", "after", timeout=5)
            moved = redis.Redis.from_url(nodes[target].url)
            owned_keys = moved.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
            moved.close()
    finally:
        for node in nodes:
            node.stop()

    failures = [r for r in results if isinstance(r, Exception)]
    assert load_running
    assert owned_keys > 0
    assert after == "after"
    assert failures == []
    assert results == list(range(1, 400))
