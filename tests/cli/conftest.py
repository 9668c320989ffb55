"""Fixtures that run the installed ``vvkit`` command in a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

VVKIT = [sys.executable, "-m", "vvkit"]


@pytest.fixture
def run_vvkit(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``vvkit ARGS`` in ``cwd`` with a private blueprint cache; return the finished process."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "COLUMNS": "100", "NO_COLOR": "1"}
    env.pop("VVKIT_WORKSPACE", None)

    def run(*args: str, cwd: Path = tmp_path, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run([*VVKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"vvkit {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def workspace(tmp_path: Path, run_vvkit) -> Path:
    """A fresh workspace made by ``vvkit init``."""
    run_vvkit("init", "ws", check=True)
    return tmp_path / "ws"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Return every file below ``folder`` (outside .git) with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(folder).parts
    }
