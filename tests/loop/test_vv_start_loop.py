"""vv-start running a service on the loop that VV_LOOP or --loop names."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vv import Client

VV_START = str(Path(sys.executable).parent / "vv-start")

SERVICE_SOURCE = textwrap.dedent('''
    import asyncio
    from vv import Service, rpc

    class Probe(Service):
        @rpc
        async def loop_type(self) -> str:
            return type(asyncio.get_running_loop()).__name__
''')


def start_service(tmp_path: Path, app: str, redis_url: str, *options: str, loop_env: str | None = None):
    folder = tmp_path / "services" / app / "probe"
    folder.mkdir(parents=True)
    (folder / "service.py").write_text(SERVICE_SOURCE)
    env = {**os.environ, "TRANSPORT": redis_url}
    env.pop("VV_LOOP", None)
    if loop_env is not None:
        env["VV_LOOP"] = loop_env
    return subprocess.Popen(
        [VV_START, "--service", str(folder), *options],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


async def call_when_up(client: Client, target: str, process: subprocess.Popen, timeout_s: float = 20.0) -> str:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        assert process.poll() is None, process.stderr.read()
        try:
            return await client.call(target, "loop_type", timeout=0.5)
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise


async def stop(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    returncode = await asyncio.to_thread(process.wait, 15)
    return returncode, process.stderr.read()


@pytest.mark.parametrize(
    "options, loop_env, loop_class",
    [
        ((), "epoll", "EpollEventLoop"),
        (("--loop", "epoll"), "asyncio", "EpollEventLoop"),
        ((), None, "_UnixSelectorEventLoop"),
    ],
)
async def test_service_runs_on_chosen_loop(tmp_path, redis_url, app_name, options, loop_env, loop_class):
    process = start_service(tmp_path, app_name, redis_url, *options, loop_env=loop_env)
    try:
        async with Client(redis_url) as client:
            served_by = await call_when_up(client, f"{app_name}.probe", process)
        returncode, stderr = await stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert served_by == loop_class
    # SIGTERM reaches the service through the loop's signal handling.
    assert returncode == 0, stderr
    assert "draining" in stderr


def test_invalid_loop_is_a_config_error(tmp_path, redis_url, app_name):
    process = start_service(tmp_path, app_name, redis_url, loop_env="tokio")
    try:
        returncode = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()

    assert returncode == 2  # vv-start's exit status for invalid settings
    assert "tokio" in stderr
    assert "asyncio, epoll, uvloop" in stderr
