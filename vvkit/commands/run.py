"""``vvkit up``, ``down``, ``ps`` and ``logs``: run the workspace on this machine.

``up`` uses Docker Compose when a Docker engine responds (or with
``--docker``), else local processes under a supervisor (``--local``; see
``vvkit.local.supervisor``). The other commands read the state that the
supervisor records in ``.vvkit/run/state.json``.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from vvkit.local import docker as _docker
from vvkit.console import err, out
from vvkit.errors import VvkitError
from vvkit.local import logs, runner
from vvkit.deploy.model import API_COMPONENT
from vvkit.local.environment import load_model
from vvkit.local.requirements import check_requirements
from vvkit.local.servers import port_is_open
from vvkit.local.state import ProcessState, RunState, logs_dir, read_state
from vvkit.options import JsonOption, WorkspaceOption, open_workspace
from vvkit.workspace import Workspace

MAX_PORT = 65535
_STATE_STYLES = {
    ProcessState.RUNNING: "green",
    ProcessState.STARTING: "yellow",
    ProcessState.BACKOFF: "red",
    ProcessState.FAILED: "bold red",
    ProcessState.STOPPING: "dim",
    ProcessState.STOPPED: "dim",
}

ComponentsArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Components to run, as APP/COMPONENT or COMPONENT. Default: all.", show_default=False),
]


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(ps)
    app.command(name="logs")(logs_command)


# --- up -------------------------------------------------------------------


def up(
    components: ComponentsArgument = None,
    local: Annotated[bool, typer.Option("--local", help="Run local processes even when a Docker engine responds.")] = False,
    docker: Annotated[bool, typer.Option("--docker", help="Run with Docker Compose; fail when no engine responds.")] = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Return once every service is healthy.")] = False,
    api_port: Annotated[int | None, typer.Option(help="HTTP port of the api component, 1 to 65535. Default: [api] port in vvkit.toml, else 8080.", show_default=False)] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every service to reply to its health check; above 0.")] = runner.DEFAULT_START_TIMEOUT_S,
    workspace: WorkspaceOption = None,
) -> None:
    """Start the workspace's services with Redis and PostgreSQL; stream their logs until Ctrl-C, or return with --detach."""
    if local and docker:
        raise VvkitError("--local and --docker contradict each other: pass one of them")
    _check_up_options(api_port, timeout)
    ws = open_workspace(workspace)
    if docker or (not local and _docker.engine_responds()):
        _docker.compose_up(ws, components or [], detach)
        return

    running = runner.running_state(ws)
    if running is not None:
        _report_running(ws, running)
        return
    # A supervisor that was killed leaves its servers running on the data
    # folders; stop them before a new supervisor starts servers there.
    runner.stop(ws)
    model, chosen = load_model(ws, components or [])  # reject a broken workspace here, not in the supervisor
    port = model.settings.api_port if api_port is None else api_port
    if any(component.name == API_COMPONENT for component in chosen) and port_is_open(port):
        raise VvkitError(f"port {port} for the api component is in use: pass --api-port PORT "
                         "or change [api] port in vvkit.toml")
    check_requirements(chosen)
    if not detach:
        # A foreground stack lives as long as this command: when a terminal
        # closes (SIGHUP) or a process manager ends it (SIGTERM), stop the
        # stack as on Ctrl-C instead of leaving the detached supervisor behind.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
    # Log sizes before this start: the live output and a failure message
    # show only the lines that this run writes.
    offsets = logs.end_offsets([*logs.select_sources(ws.state_dir, None, []),
                                logs.LogSource("supervisor", logs.supervisor_log(ws.state_dir))])
    process = runner.launch(ws, components or [], port)
    state = _wait_with_progress(ws, process, timeout, offsets)

    err.print(_process_table(state))
    if detach:
        err.print(f"[green]every service is healthy[/]; Redis at {state.redis_url}; stop with 'vvkit down'")
        return
    _stream_until_stopped(ws, state, offsets)


def _check_up_options(api_port: int | None, timeout_s: float) -> None:
    """Reject option values that cannot work, before anything starts."""
    if api_port is not None and not 1 <= api_port <= MAX_PORT:
        raise VvkitError(f"invalid --api-port {api_port}: use a TCP port from 1 to {MAX_PORT}")
    if not timeout_s > 0:
        raise VvkitError(f"invalid --timeout {timeout_s}: use a number of seconds above 0")


def _report_running(ws: Workspace, running: RunState) -> None:
    """Tell that a stack already runs, and which components of the workspace it lacks."""
    err.print(f"already running (supervisor pid {running.supervisor_pid}); stop it with 'vvkit down'")
    err.print(_process_table(running))
    in_stack = {record.component for record in running.services}
    absent = [f"{c.app}/{c.name}" for c in ws.components() if f"{c.app}/{c.name}" not in in_stack]
    if absent:
        err.print(f"not in the running stack: {', '.join(absent)}")
    err.print("the stack runs the code it started with: after code changes or new components, "
              "run 'vvkit down && vvkit up'")


def _wait_with_progress(ws: Workspace, process, timeout_s: float, offsets: dict) -> RunState:
    try:
        with Live(console=err, transient=True, refresh_per_second=8) as live:
            return runner.wait_until_up(ws, process, timeout_s, lambda state: live.update(_progress_table(state)),
                                        offsets)
    except runner.StackFailed:
        runner.stop_launched(ws, process)
        raise
    except KeyboardInterrupt:
        err.print("stopping")
        runner.stop_launched(ws, process)
        raise


def _stream_until_stopped(ws: Workspace, state: RunState, offsets: dict) -> None:
    sources = logs.select_sources(ws.state_dir, state, [])
    prefixer = logs.Prefixer([source.name for source in sources])
    err.print("streaming logs; Ctrl-C stops every service")
    try:
        for name, line in logs.follow(sources, offsets, state.supervisor_alive):
            out.print(prefixer.format(name, line))
    except KeyboardInterrupt:
        err.print("stopping")
    finally:
        runner.stop(ws)
    err.print("stopped")


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


def _progress_table(state: RunState) -> Table:
    healthy = sum(record.state == ProcessState.RUNNING for record in state.services)
    title = f"{healthy}/{len(state.services)} services healthy" if state.services else "starting Redis and PostgreSQL"
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column in ("name", "state", "health", "restarts"):
        table.add_column(column)
    for record in state.processes:
        style = _STATE_STYLES.get(record.state, "")
        table.add_row(record.name, f"[{style}]{record.state}[/]", record.health, str(record.restarts))
    return table


# --- down -----------------------------------------------------------------


def down(
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the data under .vvkit/ (Redis, PostgreSQL, logs).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting data with --purge.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the supervisor to stop everything before killing it.")] = runner.DEFAULT_STOP_TIMEOUT_S,
    workspace: WorkspaceOption = None,
) -> None:
    """Stop everything 'vvkit up' started: services first, then PostgreSQL and Redis."""
    if purge and not yes and not sys.stdin.isatty():
        raise VvkitError("--purge deletes the Redis and PostgreSQL data under .vvkit/, and no terminal is there "
                         "to confirm it: pass --yes to delete without asking")
    ws = open_workspace(workspace)
    state = read_state(ws.state_dir)
    if state is None and _docker.engine_responds() and _docker.compose_file(ws).exists():
        _docker.compose_down(ws, purge)
        return

    was_running = state is not None and (state.supervisor_alive() or any(r.is_alive() for r in state.processes))
    runner.stop(ws, timeout)
    err.print("stopped every process of the local stack" if was_running else "nothing was running")
    if purge:
        _purge(ws, yes)


def _purge(ws: Workspace, yes: bool) -> None:
    if not ws.state_dir.exists():
        return
    if not yes and not typer.confirm(f"delete {ws.state_dir} with all Redis and PostgreSQL data and logs?"):
        raise typer.Abort()
    shutil.rmtree(ws.state_dir)
    err.print(f"deleted {ws.state_dir}")


# --- ps -------------------------------------------------------------------


def ps(json_output: JsonOption = False, workspace: WorkspaceOption = None) -> None:
    """Show each server and service: pid, state, uptime, health, restarts, port."""
    ws = open_workspace(workspace)
    state = read_state(ws.state_dir)
    if state is None:
        if json_output:
            out.print(json.dumps({"running": False, "processes": []}), markup=False)
        else:
            err.print("nothing was started in this workspace; start it with 'vvkit up'")
        return
    if not state.supervisor_alive():
        _mark_stopped(state)
    if json_output:
        out.print(json.dumps(_ps_document(state), indent=2), markup=False)
    else:
        out.print(_process_table(state))


def _mark_stopped(state: RunState) -> None:
    """Show what a dead supervisor left: processes whose recorded pid is gone are stopped."""
    for record in state.processes:
        if not record.is_alive():
            record.state = ProcessState.STOPPED
            record.pid = None
            record.health = "unknown"


def _ps_document(state: RunState) -> dict:
    now = time.time()
    return {
        "running": state.supervisor_alive(),
        "state": state.state,
        "supervisor_pid": state.supervisor_pid,
        "redis_url": state.redis_url,
        "cluster": state.cluster,
        "processes": [
            {
                "name": record.name,
                "kind": record.kind,
                "component": record.component,
                "pid": record.pid,
                "state": record.state,
                "uptime_s": _round(record.uptime_s(now)),
                "health": record.health,
                "restarts": record.restarts,
                "port": record.port,
                "exit_code": record.exit_code,
            }
            for record in state.processes
        ],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _process_table(state: RunState) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("name", "pid", "state", "uptime", "health", "restarts", "port"):
        table.add_column(column)
    now = time.time()
    for record in state.processes:
        style = _STATE_STYLES.get(record.state, "")
        uptime = record.uptime_s(now)
        table.add_row(
            record.name, str(record.pid or "-"), f"[{style}]{record.state}[/]",
            "-" if uptime is None else _format_duration(uptime), record.health, str(record.restarts),
            str(record.port or "-"),
        )
    return table


def _format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# --- logs -----------------------------------------------------------------


def logs_command(
    names: Annotated[list[str] | None, typer.Argument(help="Components (APP/COMPONENT or COMPONENT), process names as 'vvkit ps' lists them, or 'supervisor'. Default: every service.", show_default=False)] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing lines as they are written, until Ctrl-C.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Number of lines to print from the end of each log first; 0 or more.")] = 50,
    workspace: WorkspaceOption = None,
) -> None:
    """Print the logs that the local stack wrote under .vvkit/logs/."""
    if lines < 0:
        raise VvkitError(f"invalid --lines {lines}: use 0 or more")
    ws = open_workspace(workspace)
    state = read_state(ws.state_dir)
    sources = logs.select_sources(ws.state_dir, state, names or [])
    if not sources:
        raise VvkitError(f"no logs in {logs_dir(ws.state_dir)}: start the stack with 'vvkit up --local'")

    logs.print_tail(out, sources, lines)
    if not follow:
        return
    prefixer = logs.Prefixer([source.name for source in sources])
    try:
        for name, line in logs.follow(sources, logs.end_offsets(sources), lambda: True):
            out.print(prefixer.format(name, line))
    except KeyboardInterrupt:
        pass
