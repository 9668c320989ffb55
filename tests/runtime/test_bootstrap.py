"""vv-start: option precedence, --help, loading a component folder, SIGTERM drain."""

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
from vv._config import START_OPTIONS, resolve_start_options
from vv._errors import ConfigError

VV_START = str(Path(sys.executable).parent / "vv-start")

SERVICE_SOURCE = textwrap.dedent('''
    import asyncio
    from vv import Service, rpc

    class Machine(Service):
        @rpc(http=["GET"])
        async def hello(self, name: str) -> str:
            return f"hello {name}"

        @rpc
        async def slow(self, seconds: float) -> float:
            await asyncio.sleep(seconds)
            return seconds
''')


def test_option_beats_environment_beats_default():
    environ = {"APP": "from-env", "TRANSPORT": "redis://env:6379/0", "LOG_LEVEL": "debug"}
    resolved = resolve_start_options({"app": "from-option", "transport": None}, environ)

    assert resolved["app"] == "from-option"
    assert resolved["transport"] == "redis://env:6379/0"
    assert resolved["log_level"] == "DEBUG"
    assert resolved["log_format"] == "text"
    assert resolved["redis_cluster"] is False


def test_cluster_flag_from_environment():
    assert resolve_start_options({}, {"CLUSTER": "true"})["redis_cluster"] is True
    assert resolve_start_options({}, {"CLUSTER": "false"})["redis_cluster"] is False
    with pytest.raises(ConfigError, match="CLUSTER"):
        resolve_start_options({}, {"CLUSTER": "maybe"})


def test_invalid_choice_names_allowed_values():
    with pytest.raises(ConfigError, match="use one of text, json"):
        resolve_start_options({"log_format": "xml"}, {})


def test_help_lists_every_environment_variable():
    result = subprocess.run([VV_START, "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"})

    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    for option in START_OPTIONS:
        assert option.option in text
        assert f"env {option.env}" in text


def test_missing_service_exits_2():
    env = {k: v for k, v in os.environ.items() if k != "SERVICE_NAME"}
    result = subprocess.run([VV_START], capture_output=True, text=True, env=env, timeout=30)

    assert result.returncode == 2
    assert "no service given" in result.stderr


def write_component(root: Path, app: str) -> Path:
    folder = root / "services" / app / "machine"
    folder.mkdir(parents=True)
    (folder / "service.py").write_text(SERVICE_SOURCE)
    return folder


async def wait_healthy(client: Client, target: str, process: subprocess.Popen, timeout_s: float = 20.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        assert process.poll() is None, process.stderr.read()
        try:
            return await client.call(target, "health", timeout=0.5)
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise


async def test_folder_service_serves_and_drains_on_sigterm(tmp_path, redis_url, app_name):
    folder = write_component(tmp_path, app_name)
    env = {**os.environ, "TRANSPORT": redis_url, "LOG_FORMAT": "json"}
    process = subprocess.Popen([VV_START, "--service", str(folder)], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        async with Client(redis_url) as client:
            health = await wait_healthy(client, f"{app_name}.machine", process)
            assert await client.call(f"{app_name}.machine", "hello", args=["vv"]) == "hello vv"

            # A request in flight when SIGTERM arrives is finished and replied to.
            slow = asyncio.create_task(client.call(f"{app_name}.machine", "slow", args=[0.5], timeout=5))
            await asyncio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            assert await slow == 0.5
        returncode = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()

    assert health["service"] == f"{app_name}.machine"
    assert returncode == 0
    assert '"message": "received SIGTERM: draining"' in stderr
    assert f"service {app_name}.machine stopped" in stderr


async def test_sigterm_during_load_loses_no_request(tmp_path, redis_url, app_name):
    folder = write_component(tmp_path, app_name)
    env = {**os.environ, "TRANSPORT": redis_url, "VV_MAX_CONCURRENCY": "8"}
    target = f"{app_name}.machine"

    def start(log_name: str) -> subprocess.Popen:
        with open(tmp_path / log_name, "wb") as log:
            return subprocess.Popen([VV_START, "--service", str(folder)], env=env, cwd=tmp_path,
                                    stdout=log, stderr=subprocess.STDOUT)

    first = start("first.log")
    second = None
    try:
        async with Client(redis_url) as client:
            await wait_healthy_logged(client, target, first, tmp_path / "first.log")
            calls = [asyncio.create_task(client.call(target, "slow", args=[0.1 + n / 1000], timeout=30))
                     for n in range(100)]
            await asyncio.sleep(0.5)
            first.send_signal(signal.SIGTERM)
            first_returncode = await asyncio.to_thread(first.wait, 20)
            second = start("second.log")
            results = await asyncio.gather(*calls)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    assert first_returncode == 0
    assert results == [0.1 + n / 1000 for n in range(100)]
    assert "drained" in (tmp_path / "first.log").read_text()


async def wait_healthy_logged(client: Client, target: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        assert process.poll() is None, log_path.read_text()
        try:
            await client.call(target, "health", timeout=0.5)
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise


async def test_start_before_redis_waits(tmp_path, redis_server_factory, app_name):
    from vvkit.local.servers import free_port

    folder = write_component(tmp_path, app_name)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    log_path = tmp_path / "early.log"
    env = {**os.environ, "TRANSPORT": url, "VV_BACKOFF_MAX_S": "0.5"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([VV_START, "--service", str(folder)], env=env, cwd=tmp_path,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        await asyncio.sleep(1.5)
        assert process.poll() is None, log_path.read_text()
        redis_server_factory(port=port)
        async with Client(url) as client:
            await wait_healthy_logged(client, f"{app_name}.machine", process, log_path)
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.to_thread(process.wait, 20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert returncode == 0
    assert "not reachable yet" in log_path.read_text()
