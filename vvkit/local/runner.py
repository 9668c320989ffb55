"""Start, watch and stop a workspace's supervisor from the CLI.

The CLI never owns the servers or services itself: it starts
``vvkit.local.supervisor`` in a session of its own, follows the state file
it writes, and stops it with SIGTERM. Every process it signals is checked
against the pid and start time recorded in the state file first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from vvkit.errors import VvkitError
from vvkit.local.logs import lines_since, supervisor_log
from vvkit.local.servers import port_is_open
from vvkit.local.state import SUPERVISOR_MODULE, ProcessState, RunState, StackState, logs_dir, read_state
from vvkit.workspace import Workspace

POLL_INTERVAL_S = 0.1
DEFAULT_START_TIMEOUT_S = 120.0
# The supervisor gives each level of services STOP_GRACE_S (10 s), then
# PostgreSQL and Redis up to 15 s each. This bounds the whole shutdown.
DEFAULT_STOP_TIMEOUT_S = 60.0
ORPHAN_GRACE_S = 5.0
PORT_RELEASE_TIMEOUT_S = 10.0
LOG_LINES_ON_FAILURE = 20


class StackFailed(VvkitError):
    """The local stack could not start. The message contains the failing logs."""


def running_state(workspace: Workspace) -> RunState | None:
    """Return the state of the stack when its supervisor runs, else None."""
    state = read_state(workspace.state_dir)
    if state is None or not state.supervisor_alive():
        return None
    return state


def launch(workspace: Workspace, components: list[str], api_port: int) -> subprocess.Popen:
    """Start the supervisor for ``workspace`` detached from this terminal; return its process."""
    logs = logs_dir(workspace.state_dir)
    logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", SUPERVISOR_MODULE, str(workspace.root), "--api-port", str(api_port)]
    for component in components:
        command += ["--component", component]
    with open(supervisor_log(workspace.state_dir), "ab") as log:
        return subprocess.Popen(command, cwd=workspace.root, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)


def wait_until_up(
    workspace: Workspace,
    process: subprocess.Popen,
    timeout_s: float,
    on_update: Callable[[RunState], None],
    log_offsets: dict[Path, int] | None = None,
) -> RunState:
    """Wait until every service replies to its health check; raise StackFailed when that cannot happen.

    ``log_offsets`` maps log files to their size before this start, so the
    failure message quotes only lines of this run (files absent from it are
    read from the start).
    """
    offsets = log_offsets or {}
    supervisor = supervisor_log(workspace.state_dir)
    deadline = time.monotonic() + timeout_s
    while True:
        state = read_state(workspace.state_dir)
        if state is not None and state.supervisor_pid == process.pid:
            on_update(state)
            if state.state == StackState.RUNNING:
                return state
            if state.state == StackState.FAILED:
                raise StackFailed(failure_report(workspace, state, offsets))
        if process.poll() is not None:
            lines = lines_since(supervisor, offsets.get(supervisor, 0), LOG_LINES_ON_FAILURE)
            raise StackFailed(f"the supervisor exited with code {process.returncode}; its log:\n" + "\n".join(lines))
        if time.monotonic() > deadline:
            raise StackFailed(f"not every service replied to its health check within {timeout_s:g} s "
                              f"(--timeout); {failure_report(workspace, state, offsets)}")
        time.sleep(POLL_INTERVAL_S)


def failure_report(workspace: Workspace, state: RunState | None, log_offsets: dict[Path, int] | None = None) -> str:
    """Describe the failed or unhealthy processes with the last lines that this run wrote to their logs."""
    offsets = log_offsets or {}
    if state is None:
        return "the supervisor wrote no state; see " + str(supervisor_log(workspace.state_dir))
    if state.error:
        return f"{state.error} (details in {supervisor_log(workspace.state_dir)})"
    parts = []
    for record in state.services:
        if record.state == ProcessState.RUNNING:
            continue
        log = Path(record.log) if record.log else None
        lines = lines_since(log, offsets.get(log, 0), LOG_LINES_ON_FAILURE) if log else []
        exit_code = "" if record.exit_code is None else f" (exit code {record.exit_code})"
        parts.append(f"{record.name} is {record.state}{exit_code}; last log lines:\n"
                     + ("\n".join(f"  {line}" for line in lines) or "  (none written by this run)"))
    return "\n".join(parts) or "no service reported a failure"


def stop_launched(workspace: Workspace, process: subprocess.Popen, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
    """Stop a supervisor that ``launch`` returned, then every process it recorded.

    The supervisor may not have written its state file yet, and ``stop``
    finds a supervisor only through that file. So this signals the child
    process itself first.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    stop(workspace, timeout_s)


def stop(workspace: Workspace, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> RunState | None:
    """Stop the stack of ``workspace``; return the state it had, or None when nothing was recorded.

    The supervisor stops its children in dependency order. When the
    supervisor was killed, the processes that outlived it are stopped here,
    by their recorded pid and start time. Then this waits until their ports
    are closed.
    """
    state = read_state(workspace.state_dir)
    if state is None:
        return None
    # Only the ports of processes running now are waited for: after a stop,
    # another program may rightly have taken a port of an earlier run.
    ports = [record.port for record in state.processes if record.port and record.is_alive()]
    if state.supervisor_alive():
        _stop_supervisor(state, timeout_s)
    _stop_orphans(state)
    _wait_ports_closed(ports)
    return state


def _stop_supervisor(state: RunState, timeout_s: float) -> None:
    os.kill(state.supervisor_pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while state.supervisor_alive():
        if time.monotonic() > deadline:
            # Its children stop too: services die with it (PR_SET_PDEATHSIG)
            # and _stop_orphans takes the servers.
            os.kill(state.supervisor_pid, signal.SIGKILL)
            break
        time.sleep(POLL_INTERVAL_S)


def _stop_orphans(state: RunState) -> None:
    alive = [record for record in state.processes if record.is_alive()]
    for record in alive:
        # PostgreSQL ends its sessions on SIGINT ("fast shutdown"); on SIGTERM
        # it would wait for every client to disconnect.
        os.kill(record.pid, signal.SIGINT if record.kind == "postgres" else signal.SIGTERM)
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while any(record.is_alive() for record in alive) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    for record in alive:
        if record.is_alive():
            os.kill(record.pid, signal.SIGKILL)


def _wait_ports_closed(ports: list[int]) -> None:
    deadline = time.monotonic() + PORT_RELEASE_TIMEOUT_S
    while any(port_is_open(port) for port in ports):
        if time.monotonic() > deadline:
            still = [port for port in ports if port_is_open(port)]
            raise VvkitError(f"ports {still} still accept connections after the stack stopped: "
                             "another program may have taken them; check with 'ss -ltnp'")
        time.sleep(POLL_INTERVAL_S)
