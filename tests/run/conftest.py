"""Fixtures for the local runner: a scaffolded workspace and the real ``vvkit`` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from vvkit.local.state import read_state

VVKIT = [sys.executable, "-m", "vvkit"]
COMMAND_TIMEOUT_S = 120

# Methods added to the scaffolded echo service: one pure, one that keeps a
# counter in Redis (to see data survive down/up), one that sleeps (timeouts).
ECHO_METHODS = '''

    @rpc
    async def add(self, a: int, b: int) -> int:
        return a + b

    @rpc
    async def visit(self) -> int:
        return await self.redis.incr("{%s}:visits" % self.service_id)

    @rpc
    async def sleep(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds
'''


@pytest.fixture
def vvkit_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "COLUMNS": "120", "NO_COLOR": "1"}
    env.pop("VVKIT_WORKSPACE", None)
    return env


@pytest.fixture
def run_vvkit(tmp_path: Path, vvkit_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``vvkit ARGS`` in ``cwd``; return the finished process."""

    def run(*args: str, cwd: Path = tmp_path, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run([*VVKIT, *args], cwd=cwd, env=vvkit_env, capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT_S)
        if check and result.returncode != 0:
            raise AssertionError(f"vvkit {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    return run


def make_workspace(root: Path, run_vvkit, cluster: bool = False, nodes: int = 6) -> Path:
    """Create a workspace with ``shop/echo`` (with ECHO_METHODS) under ``root``; return its folder."""
    run_vvkit("init", "ws", cwd=root, check=True)
    workspace = root / "ws"
    toml = workspace / "vvkit.toml"
    text = toml.read_text().replace("cluster = true", f"cluster = {'true' if cluster else 'false'}")
    toml.write_text(text.replace("nodes = 6", f"nodes = {nodes}"))
    run_vvkit("new", "shop/echo", cwd=workspace, check=True)
    service = workspace / "services" / "shop" / "echo" / "service.py"
    service.write_text("import asyncio\n" + service.read_text() + ECHO_METHODS)
    return workspace


@pytest.fixture
def stop_stacks() -> Iterator[list[Path]]:
    """Collect workspaces whose stacks must be stopped after the test, whatever happened in it."""
    workspaces: list[Path] = []
    yield workspaces
    for workspace in workspaces:
        subprocess.run([*VVKIT, "down", "--workspace", str(workspace)], capture_output=True, timeout=COMMAND_TIMEOUT_S)
        kill_recorded(workspace)


def kill_recorded(workspace: Path) -> None:
    """SIGKILL every process still recorded for ``workspace`` (a failed test's leftovers)."""
    state = read_state(workspace / ".vvkit")
    if state is None:
        return
    for record in state.processes:
        if record.is_alive():
            os.kill(record.pid, signal.SIGKILL)
    if state.supervisor_alive():
        os.kill(state.supervisor_pid, signal.SIGKILL)


def ps_json(run_vvkit, workspace: Path) -> dict:
    result = run_vvkit("ps", "--json", cwd=workspace, check=True)
    return json.loads(result.stdout)


def processes_by_name(document: dict) -> dict[str, dict]:
    return {process["name"]: process for process in document["processes"]}


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    """Poll ``condition`` until it returns a true value; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def listening_ports() -> set[int]:
    return {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
