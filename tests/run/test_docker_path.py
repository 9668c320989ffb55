"""`vvkit up --docker` and `down` drive Docker Compose.

No Docker engine runs here, so a stand-in `docker` executable on PATH
records each command line it receives and answers `docker info` as a
running engine would (or fails, for the no-engine case). The compose file
that `up` syncs first is checked against the compose-spec schema elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "{log}"
if [ "$1" = "info" ]; then exit {info_code}; fi
exit 0
"""


def _fake_docker(folder: Path, info_code: int = 0) -> tuple[dict[str, str], Path]:
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    log = folder / "docker.log"
    script = bin_dir / "docker"
    script.write_text(FAKE_DOCKER.format(log=log, info_code=info_code))
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
    return env, log


def _vvkit(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vvkit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for args in (["init", "shop"], ["new", "shop/echo"]):
        cwd = tmp_path if args[0] == "init" else tmp_path / "shop"
        result = subprocess.run([sys.executable, "-m", "vvkit", *args], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    return tmp_path / "shop"


def test_up_docker_syncs_then_runs_compose(shop, tmp_path):
    env, log = _fake_docker(tmp_path)

    result = _vvkit(["up", "--docker", "--detach"], shop, env)

    assert result.returncode == 0, result.stderr
    assert (shop / "docker-compose.yml").is_file()
    calls = log.read_text().splitlines()
    assert calls[0].startswith("info")
    assert calls[-1] == f"compose -f {shop / 'docker-compose.yml'} up --build --detach"


def test_up_docker_names_compose_services(shop, tmp_path):
    env, log = _fake_docker(tmp_path)

    result = _vvkit(["up", "--docker", "shop/echo"], shop, env)

    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines()[-1].endswith("up --build shop-echo")


def test_up_docker_without_engine_fails(shop, tmp_path):
    env, log = _fake_docker(tmp_path, info_code=1)

    result = _vvkit(["up", "--docker"], shop, env)

    assert result.returncode == 1
    assert "no Docker engine" in result.stderr
    assert "--local" in result.stderr
    assert not any(line.startswith("compose") for line in log.read_text().splitlines())


def test_down_runs_compose_down(shop, tmp_path):
    env, log = _fake_docker(tmp_path)
    assert _vvkit(["sync"], shop, env).returncode == 0

    result = _vvkit(["down"], shop, env)

    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines()[-1] == f"compose -f {shop / 'docker-compose.yml'} down"
