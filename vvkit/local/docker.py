"""Run the workspace with Docker Compose when a Docker engine responds."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

from vvkit.console import err
from vvkit.errors import VvkitError
from vvkit.names import compose_name
from vvkit.workspace import Workspace

COMPOSE_FILE = "docker-compose.yml"
# `docker info` waits for the engine; a missing engine fails fast, a hung
# socket must not stall `vvkit up` longer than this.
ENGINE_PROBE_TIMEOUT_S = 5.0


@functools.cache
def engine_responds() -> bool:
    """Return whether a Docker CLI is installed and its engine responds to ``docker info``."""
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                               timeout=ENGINE_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


def compose_file(workspace: Workspace) -> Path:
    return workspace.root / COMPOSE_FILE


def _require_engine() -> None:
    if not engine_responds():
        raise VvkitError("no Docker engine responds to 'docker info': start Docker, or run local processes with --local")


def _sync_if_stale(workspace: Workspace) -> None:
    sync = [sys.executable, "-m", "vvkit", "sync", "--workspace", str(workspace.root)]
    if subprocess.run([*sync, "--check"], capture_output=True).returncode == 0:
        return
    err.print(f"{COMPOSE_FILE} is out of date; running 'vvkit sync'")
    if subprocess.run(sync).returncode != 0:
        raise VvkitError("'vvkit sync' failed; fix the errors above, then run 'vvkit up' again")


def compose_up(workspace: Workspace, components: list[str], detach: bool) -> None:
    """Run ``docker compose up --build`` for the workspace, or for ``components`` given as APP/COMPONENT."""
    _require_engine()
    _sync_if_stale(workspace)
    services = [compose_name(*name.split("/", 1)) if "/" in name else name for name in components]
    command = ["docker", "compose", "-f", str(compose_file(workspace)), "up", "--build"]
    if detach:
        command.append("--detach")
    result = subprocess.run([*command, *services], cwd=workspace.root)
    if result.returncode != 0:
        raise VvkitError(f"'docker compose up' exited with code {result.returncode}; see its output above")


def compose_down(workspace: Workspace, purge: bool) -> None:
    """Run ``docker compose down``; with ``purge`` also remove the named volumes."""
    command = ["docker", "compose", "-f", str(compose_file(workspace)), "down"]
    if purge:
        command.append("--volumes")
    result = subprocess.run(command, cwd=workspace.root)
    if result.returncode != 0:
        raise VvkitError(f"'docker compose down' exited with code {result.returncode}; see its output above")
