"""Helpers for transport tests: services run by vv-start in their own processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

VV_START = str(Path(sys.executable).parent / "vv-start")


class VVProcess:
    """One vv-start process; its stderr goes to a file so that it never blocks on a full pipe."""

    def __init__(self, process: subprocess.Popen, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout_s: float = 20.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def vv_start(tmp_path: Path) -> Iterator[Callable[..., VVProcess]]:
    """Start ``vv-start`` on a service written from source; kill what is still running at the end."""
    started: list[VVProcess] = []

    def start(source: str, *, app: str, transport: str, env: dict[str, str] | None = None,
              component: str = "worker") -> VVProcess:
        folder = tmp_path / "services" / app / component
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "service.py").write_text(textwrap.dedent(source))
        log_path = tmp_path / f"vv-start-{len(started)}.log"
        environment = {**os.environ, "TRANSPORT": transport, **(env or {})}
        with open(log_path, "wb") as log:
            process = subprocess.Popen([VV_START, "--service", str(folder)], env=environment, cwd=tmp_path,
                                       stdout=log, stderr=subprocess.STDOUT)
        started.append(VVProcess(process, log_path))
        return started[-1]

    yield start
    for process in started:
        process.kill()
