"""The run state of a local stack: ``.vvkit/run/state.json``.

The supervisor is the only writer. It records every process it started
(servers and services) with its pid, the process start time, port and state,
and replaces the file atomically (write a temporary file, then ``os.replace``)
so that a reader never sees half a file. ``vvkit ps``, ``down``, ``logs`` and
``call`` only read it.

A recorded pid is trusted only while the process with that pid also has the
recorded start time. After a reboot or a long pause the kernel may have
given the pid to an unrelated process, and vvkit must not signal a process
that it did not start.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path

import psutil

STATE_FORMAT_VERSION = 1
RUN_DIR = "run"
LOGS_DIR = "logs"
STATE_FILE = "state.json"
SUPERVISOR_MODULE = "vvkit.local.supervisor"
# psutil reports start times rounded to the kernel's clock tick (10 ms on
# Linux); two readings of one process agree within this tolerance.
_START_TIME_TOLERANCE_S = 0.05


class ProcessState(StrEnum):
    """Lifecycle of one supervised process."""

    STARTING = "starting"  # launched, no reply to its health check yet
    RUNNING = "running"  # replying to its health check (servers: accepting connections)
    BACKOFF = "backoff"  # exited unexpectedly; waiting before the next start
    FAILED = "failed"  # gave up: it kept exiting before it ever became healthy
    STOPPING = "stopping"
    STOPPED = "stopped"


class StackState(StrEnum):
    """Lifecycle of the whole stack, as the supervisor records it."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass
class ProcessRecord:
    """One process the supervisor started: a server or a service instance."""

    name: str  # unique in the stack: "redis", "postgres", "shop-echo", "shop-echo-2"
    kind: str  # "redis", "postgres" or "service"
    state: str = ProcessState.STOPPED
    pid: int | None = None
    create_time: float | None = None  # psutil start time of ``pid``; see is_alive
    port: int | None = None
    started_at: float | None = None  # wall clock (time.time) of the last start
    restarts: int = 0
    health: str = "unknown"  # "ok", "failing" or "unknown"
    exit_code: int | None = None
    log: str | None = None
    service_id: str | None = None  # "<app>.<component>" for services
    component: str | None = None  # "<app>/<component>" for services

    def is_alive(self) -> bool:
        """Return whether the recorded pid still runs and is the process recorded."""
        return process_matches(self.pid, self.create_time)

    def uptime_s(self, now: float | None = None) -> float | None:
        if self.state not in (ProcessState.STARTING, ProcessState.RUNNING) or self.started_at is None:
            return None
        return (now or time.time()) - self.started_at


@dataclass
class RunState:
    """Everything ``vvkit up --local`` started in one workspace."""

    workspace: str
    state: str = StackState.STARTING
    supervisor_pid: int | None = None
    supervisor_create_time: float | None = None
    redis_url: str | None = None
    cluster: bool = False
    error: str | None = None
    updated_at: float = 0.0
    servers: list[ProcessRecord] = field(default_factory=list)
    services: list[ProcessRecord] = field(default_factory=list)
    version: int = STATE_FORMAT_VERSION

    @property
    def processes(self) -> list[ProcessRecord]:
        return [*self.servers, *self.services]

    def find(self, name: str) -> ProcessRecord | None:
        return next((record for record in self.processes if record.name == name), None)

    def supervisor_alive(self) -> bool:
        """Return whether the recorded supervisor still runs (same pid, start time and module)."""
        if not process_matches(self.supervisor_pid, self.supervisor_create_time):
            return False
        try:
            command = psutil.Process(self.supervisor_pid).cmdline()
        except psutil.Error:
            return False
        return SUPERVISOR_MODULE in command

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> RunState:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        record_keys = {f.name for f in fields(ProcessRecord)}
        for group in ("servers", "services"):
            values[group] = [
                ProcessRecord(**{k: v for k, v in item.items() if k in record_keys}) for item in data.get(group, [])
            ]
        return cls(**values)


def process_matches(pid: int | None, create_time: float | None) -> bool:
    """Return whether ``pid`` runs and started at ``create_time`` (so it is the process recorded)."""
    if not pid or create_time is None:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(process.create_time() - create_time) < _START_TIME_TOLERANCE_S
    except psutil.Error:
        return False


def create_time_of(pid: int) -> float | None:
    """Return the start time of ``pid`` as psutil reports it, or None when it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def run_dir(state_dir: Path) -> Path:
    return state_dir / RUN_DIR


def logs_dir(state_dir: Path) -> Path:
    return state_dir / LOGS_DIR


def state_path(state_dir: Path) -> Path:
    return run_dir(state_dir) / STATE_FILE


def read_state(state_dir: Path) -> RunState | None:
    """Return the recorded run state, or None when nothing was ever started here."""
    path = state_path(state_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        # Only write_state writes the file and it replaces it atomically, so
        # a broken file was edited by hand; treat it as no state.
        return None
    return RunState.from_dict(data)


def write_state(state_dir: Path, state: RunState) -> None:
    """Replace the state file atomically with ``state``."""
    folder = run_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    state.updated_at = time.time()
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".state-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(state.to_json())
        os.replace(temporary, state_path(state_dir))
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
