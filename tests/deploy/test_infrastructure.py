"""The generated Redis and PostgreSQL checks and the cluster creator work against real servers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from vvkit.deploy import infrastructure
from vvkit.local.servers import RedisServer, free_port

NODES = 6
# A cluster node also listens on its port + 10000 for the cluster bus.
MAX_CLUSTER_PORT = 65535 - 10000


def cluster_port() -> int:
    while (port := free_port()) > MAX_CLUSTER_PORT:
        pass
    return port


def run_shell(script: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=90, env={**os.environ, **(environ or {})}
    )


@pytest.fixture
def cluster_nodes(tmp_path: Path):
    """Six redis-server processes in cluster mode that are not yet joined into a cluster."""
    nodes = []
    try:
        for index in range(NODES):
            nodes.append(RedisServer(tmp_path / f"node-{index}", port=cluster_port(), cluster=True).start())
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.mark.cluster
def test_cluster_create_script(cluster_nodes):
    ports = [node.port for node in cluster_nodes]
    script = infrastructure.redis_cluster_create_script([f"127.0.0.1:{port}" for port in ports])
    ready = infrastructure.redis_cluster_ready_command(ports[0])

    assert run_shell(ready).returncode != 0

    created = run_shell(script)
    assert created.returncode == 0, created.stdout + created.stderr
    assert "[OK] All 16384 slots covered" in created.stdout

    for _ in range(100):
        if run_shell(ready).returncode == 0:
            break
        subprocess.run(["sleep", "0.1"])
    assert run_shell(ready).returncode == 0

    again = run_shell(script)
    assert again.returncode == 0
    assert "cluster exists" in again.stdout


@pytest.mark.cluster
def test_cluster_ready_fails_with_missing_slots(cluster_nodes):
    first = cluster_nodes[0].port
    subprocess.run(["redis-cli", "-p", str(first), "cluster", "addslotsrange", "0", "8000"], check=True, capture_output=True)

    assert run_shell(infrastructure.redis_cluster_ready_command(first)).returncode != 0


def test_redis_ping_command(redis_server_factory):
    server = redis_server_factory()

    assert run_shell(infrastructure.redis_ping_command(server.port)).returncode == 0
    assert run_shell(infrastructure.redis_ping_command(free_port())).returncode != 0


def test_postgres_ready_command(shared_database_url: str):
    address = urlsplit(shared_database_url)
    environ = {"POSTGRES_USER": address.username or "postgres", "POSTGRES_DB": "postgres"}
    if address.hostname not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip("the test PostgreSQL is not on loopback")

    assert run_shell(infrastructure.postgres_ready_command(address.port or 5432), environ).returncode == 0
    assert run_shell(infrastructure.postgres_ready_command(free_port()), environ).returncode != 0
