"""Choosing a loop by name: resolve, install, new_event_loop."""

from __future__ import annotations

import asyncio
import importlib.util
import select
import subprocess
import sys

import pytest

from vv._errors import ConfigError
from vv.loop import LoopUnavailable, install, new_event_loop, resolve
from vv.loop._epoll import EpollEventLoop


@pytest.fixture
def restore_policy():
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


@pytest.fixture
def without_epoll(monkeypatch):
    monkeypatch.delattr(select, "epoll")


@pytest.fixture
def without_uvloop(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "uvloop" else real_find_spec(name, *args)
    )


def test_resolve_names():
    assert resolve("asyncio") == "asyncio"
    assert resolve("epoll") == "epoll"
    assert resolve(" EPOLL ") == "epoll"
    assert resolve(None) == "asyncio"
    assert resolve("") == "asyncio"
    assert resolve("auto") in ("uvloop", "epoll")


def test_invalid_name():
    with pytest.raises(ConfigError, match="invalid event loop 'tokio': use one of asyncio, epoll, uvloop, auto"):
        resolve("tokio")


def test_epoll_without_epoll_fails_clearly(without_epoll):
    with pytest.raises(LoopUnavailable, match="needs select.epoll, which exists only on Linux"):
        resolve("epoll")
    with pytest.raises(LoopUnavailable, match="exists only on Linux"):
        EpollEventLoop()


def test_auto_falls_back(without_uvloop, without_epoll):
    assert resolve("auto") == "asyncio"


def test_auto_without_uvloop_picks_epoll(without_uvloop):
    assert resolve("auto") == "epoll"


def test_missing_uvloop_fails_clearly(without_uvloop):
    with pytest.raises(LoopUnavailable, match="needs the uvloop package"):
        resolve("uvloop")


def test_install_epoll_used_by_asyncio_run(restore_policy):
    assert install("epoll") == "epoll"

    async def loop_type():
        return type(asyncio.get_running_loop())

    assert asyncio.run(loop_type()) is EpollEventLoop


def test_install_asyncio_restores_default(restore_policy):
    install("epoll")
    install("asyncio")
    loop = asyncio.new_event_loop()
    try:
        assert type(loop) is asyncio.SelectorEventLoop
    finally:
        loop.close()


def test_new_event_loop_types():
    loops = {name: new_event_loop(name) for name in ("asyncio", "epoll")}
    try:
        assert type(loops["asyncio"]) is asyncio.SelectorEventLoop
        assert type(loops["epoll"]) is EpollEventLoop
    finally:
        for loop in loops.values():
            loop.close()


@pytest.mark.parametrize("name, loop_class", [("epoll", "EpollEventLoop"), ("asyncio", "_UnixSelectorEventLoop")])
def test_pytest_plugin_installs_loop(tmp_path, name, loop_class):
    (tmp_path / "test_on_loop.py").write_text(
        "import asyncio\n\n"
        "async def test_loop_type():\n"
        f"    assert type(asyncio.get_running_loop()).__name__ == {loop_class!r}\n"
    )

    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "vv.loop.pytest_plugin", "--vv-loop", name, "-p", "no:cacheprovider",
         "-o", "asyncio_mode=auto", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stdout
    assert f"vv event loop: {name}" in completed.stdout
