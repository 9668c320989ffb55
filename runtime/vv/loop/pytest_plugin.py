"""A pytest plugin that runs a test suite on a chosen event loop.

    pytest -p vv.loop.pytest_plugin --vv-loop epoll tests/runtime tests/storage tests/gateway

It installs the loop's policy before any test runs, so pytest-asyncio's
event loops, ``asyncio.run`` and ``asyncio.new_event_loop`` all create loops
of that kind. Without ``--vv-loop`` it reads ``VV_TEST_LOOP`` and otherwise
leaves the policy alone.
"""

from __future__ import annotations

import os

import pytest

from ._select import LOOP_NAMES, install


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--vv-loop",
        choices=LOOP_NAMES,
        default=os.environ.get("VV_TEST_LOOP") or None,
        help="event loop for every test: asyncio, epoll, uvloop or auto (default: $VV_TEST_LOOP)",
    )


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("--vv-loop")
    if name:
        config.stash[_installed_key] = install(name)


def pytest_report_header(config: pytest.Config) -> str | None:
    installed = config.stash.get(_installed_key, None)
    return f"vv event loop: {installed}" if installed else None


_installed_key = pytest.StashKey[str]()
