"""The supervisor of a local stack: ``python -m vvkit.local.supervisor WORKSPACE``.

``vvkit up --local`` starts this module as a detached process (its own
session, output in ``.vvkit/logs/supervisor.log``) so the stack outlives the
CLI. The supervisor:

1. takes ``.vvkit/run/supervisor.lock`` so that one workspace never has two;
2. starts Redis (one server, or a Redis Cluster when ``vvkit.toml`` sets
   ``cluster = true``) and one PostgreSQL server with a database per component, on the
   ports of the previous run when they are still free, else on free ones;
3. starts one ``vv-start`` process per replica or named instance of every
   component, output appended to ``.vvkit/logs/<name>.log``;
4. calls the ``health`` RPC of every service, restarts a process that exits
   with exponential backoff, and gives up on one that exits
   ``MAX_START_FAILURES`` times in a row without ever replying;
5. on SIGTERM or SIGINT stops the services in reverse dependency order, then
   PostgreSQL, then Redis, and exits.

It records every step in ``.vvkit/run/state.json`` (see ``vvkit.local.state``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from vvkit.errors import VvkitError
from vvkit.local import servers
from vvkit.deploy.model import DeploymentModel
from vvkit.local.environment import ProcessSpec, database_name, load_model, process_specs
from vvkit.local.rpc import open_client
from vvkit.local.state import (
    ProcessRecord,
    ProcessState,
    RunState,
    StackState,
    create_time_of,
    logs_dir,
    read_state,
    run_dir,
    write_state,
)
from vvkit.names import compose_name
from vvkit.workspace import Component, Workspace

logger = logging.getLogger(__name__)

LOCK_FILE = "supervisor.lock"
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
# A process that ran this long before it exited starts again after the
# initial backoff instead of the doubled one.
STABLE_RUN_S = 30.0
MAX_START_FAILURES = 3
STOP_GRACE_S = 10.0
HEALTH_TIMEOUT_S = 2.0
HEALTH_INTERVAL_STARTING_S = 0.3
HEALTH_INTERVAL_RUNNING_S = 3.0
SERVER_WATCH_INTERVAL_S = 1.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this child when the supervisor dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def vv_start_command() -> list[str]:
    """Return the command that runs ``vv-start`` from this Python environment."""
    beside = Path(sys.executable).parent / "vv-start"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("vv-start")
    if found:
        return [found]
    raise VvkitError("vv-start not found: install the runtime with 'pip install vvkit-runtime'")


class ServiceProcess:
    """One ``vv-start`` process: started, watched and restarted with backoff."""

    def __init__(self, spec: ProcessSpec, record: ProcessRecord, supervisor: Supervisor) -> None:
        self.spec = spec
        self.record = record
        self.supervisor = supervisor
        self.process: asyncio.subprocess.Process | None = None
        self.healthy_since_start = False
        self.stopping = False

    @property
    def log_path(self) -> Path:
        return Path(self.record.log)

    def note(self, message: str) -> None:
        """Append a line from vvkit to the service's log, where ``vvkit logs`` shows it."""
        with open(self.log_path, "a") as log:
            log.write(f"vvkit: {message}\n")

    async def keep_running(self) -> None:
        backoff_s = INITIAL_BACKOFF_S
        failures = 0
        while not self._should_stop():
            started = time.monotonic()
            code = await self._run_once()
            if self._should_stop():
                return
            ran_s = time.monotonic() - started
            failures = 0 if self.healthy_since_start else failures + 1
            if failures >= MAX_START_FAILURES:
                self._give_up(code)
                return
            if ran_s >= STABLE_RUN_S:
                backoff_s = INITIAL_BACKOFF_S
            self._record_crash(code, backoff_s)
            await self.supervisor.sleep_unless_stopping(backoff_s)
            if self._should_stop():
                return
            backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)
            self.record.restarts += 1

    def _should_stop(self) -> bool:
        # The stack stops level by level: a service of a later level must
        # not be restarted between the stop request and its own stop().
        return self.stopping or self.supervisor.stop_requested.is_set()

    async def _run_once(self) -> int:
        with open(self.log_path, "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.supervisor.vv_start, env={**os.environ, "PYTHONUNBUFFERED": "1", **self.spec.environment},
                cwd=self.spec.component.path, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=_die_with_parent,
            )
        self.healthy_since_start = False
        self.record.pid = self.process.pid
        self.record.create_time = create_time_of(self.process.pid)
        self.record.started_at = time.time()
        self.record.state = ProcessState.STARTING
        self.record.health = "unknown"
        self.record.exit_code = None
        self.supervisor.save()
        self.note(f"started {self.record.name} (pid {self.process.pid})")
        logger.info("started service=%s pid=%d", self.record.name, self.process.pid)
        return await self.process.wait()

    def _record_crash(self, code: int, backoff_s: float) -> None:
        logger.warning("service=%s pid=%s exited code=%d; restarting in %.1f s",
                       self.record.name, self.record.pid, code, backoff_s)
        self.note(f"{self.record.name} exited with code {code}; restarting in {backoff_s:.1f} s")
        self.record.exit_code = code
        self.record.state = ProcessState.BACKOFF
        self.record.health = "unknown"
        self.record.pid = None
        self.supervisor.save()

    def _give_up(self, code: int) -> None:
        logger.error("service=%s exited %d times in a row before it replied to a health check (last code %d); giving up",
                     self.record.name, MAX_START_FAILURES, code)
        self.note(f"{self.record.name} exited with code {code} {MAX_START_FAILURES} times in a row "
                  "without replying to its health check; not restarting it")
        self.record.exit_code = code
        self.record.state = ProcessState.FAILED
        self.record.pid = None
        self.supervisor.save()

    def mark_health(self, healthy: bool) -> None:
        if self.record.state not in (ProcessState.STARTING, ProcessState.RUNNING):
            return
        self.record.health = "ok" if healthy else "failing"
        if healthy:
            self.healthy_since_start = True
            self.record.state = ProcessState.RUNNING

    async def stop(self) -> None:
        """Send SIGTERM, and SIGKILL after ``STOP_GRACE_S``; wait until the process is gone."""
        self.stopping = True
        self.record.state = ProcessState.STOPPING
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except TimeoutError:
                logger.warning("service=%s pid=%d ignored SIGTERM for %.0f s; killing it",
                               self.record.name, process.pid, STOP_GRACE_S)
                process.kill()
                await process.wait()
            self.note(f"stopped {self.record.name} (exit code {process.returncode})")
            self.record.exit_code = process.returncode
        self.record.state = ProcessState.STOPPED
        self.record.pid = None
        self.record.health = "unknown"


class Supervisor:
    """Owner of the servers and service processes of one workspace, until SIGTERM or SIGINT."""

    def __init__(self, model: DeploymentModel, components: list[Component], api_port: int) -> None:
        workspace = model.workspace
        self.model = model
        self.workspace = workspace
        self.components = components
        self.api_port = api_port
        self.state_dir = workspace.state_dir
        self.previous = read_state(self.state_dir)
        self.state = RunState(workspace=str(workspace.root), supervisor_pid=os.getpid(),
                              supervisor_create_time=create_time_of(os.getpid()))
        self.redis_nodes: list[servers.RedisServer] = []
        self.postgres: servers.PostgresServer | None = None
        self.services: list[ServiceProcess] = []
        self.vv_start: list[str] = []
        self.service_tasks: list[asyncio.Task] = []
        self.stop_requested = asyncio.Event()

    def save(self) -> None:
        self._update_stack_state()
        write_state(self.state_dir, self.state)

    def _update_stack_state(self) -> None:
        if self.state.state in (StackState.STOPPING, StackState.STOPPED, StackState.FAILED):
            return
        states = {record.state for record in self.state.services}
        if ProcessState.FAILED in states:
            self.state.state = StackState.FAILED
        elif self.services and states == {ProcessState.RUNNING}:
            self.state.state = StackState.RUNNING

    async def sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_requested.wait(), seconds)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop_requested.set)
        self.save()
        try:
            await self._start()
            await self._watch()
            return 0
        except Exception as exc:
            logger.exception("local stack failed")
            self.state.error = str(exc)
            self.state.state = StackState.FAILED
            self.save()
            return 1
        finally:
            await self._stop_everything()

    async def _start(self) -> None:
        self.vv_start = vv_start_command()
        cluster = self.model.settings.redis_cluster
        self.state.cluster = cluster
        await asyncio.to_thread(self._start_redis, cluster)
        await asyncio.to_thread(self._start_postgres)
        urls = await self._create_databases()
        specs = process_specs(self.model, self.components, self.state.redis_url, cluster, urls, self.api_port)
        self._start_services(_in_start_order(specs))

    # --- servers ----------------------------------------------------------

    def _previous_port(self, name: str, cluster_node: bool = False) -> int:
        """Return the port ``name`` had in the previous run if it is free now, else 0 (pick one)."""
        record = self.previous.find(name) if self.previous else None
        if record is None or not record.port or servers.port_is_open(record.port):
            return 0
        if cluster_node and servers.port_is_open(record.port + servers.CLUSTER_BUS_OFFSET):
            return 0
        return record.port

    def _start_redis(self, cluster: bool) -> None:
        if cluster:
            self.redis_nodes = self._start_redis_cluster(self.state_dir / "redis-cluster")
        else:
            node = servers.RedisServer(self.state_dir / "redis", port=self._previous_port("redis"), persistent=True)
            _start_or_clean_up(node)
            self.redis_nodes = [node]
        self.state.redis_url = self.redis_nodes[0].url
        for index, node in enumerate(self.redis_nodes):
            name = f"redis-node-{index}" if cluster else "redis"
            self.state.servers.append(_server_record(name, "redis", node.process.pid, node.port, node.log_path))
        self.save()
        logger.info("redis ready url=%s nodes=%d", self.state.redis_url, len(self.redis_nodes))

    def _start_redis_cluster(self, data_dir: Path) -> list[servers.RedisServer]:
        masters, replicas = _cluster_shape(self.model.settings.redis_nodes)
        ports = [self._previous_port(f"redis-node-{index}", cluster_node=True) for index in range(masters * (1 + replicas))]
        if 0 in ports and data_dir.exists():
            # A node that cannot get its old port cannot rejoin, because the
            # others look for it at the address in their nodes.conf.
            # NOTE: this drops the cluster's data. Nodes that moved might
            # rejoin by announcing their new port to the others (Redis
            # updates a known node's address from its gossip), but that path
            # is untested here, so the cluster is created anew.
            logger.warning("redis cluster ports of the previous run are taken; creating a new, empty cluster")
            shutil.rmtree(data_dir)
            ports = [0] * len(ports)
        return servers.start_cluster(data_dir, masters, replicas, persistent=True, ports=ports)

    def _start_postgres(self) -> None:
        server = servers.PostgresServer(self.state_dir / "postgres", port=self._previous_port("postgres"))
        _start_or_clean_up(server)
        self.postgres = server
        self.state.servers.append(_server_record("postgres", "postgres", server.process.pid, server.port,
                                                 server.log_path))
        self.save()
        logger.info("postgres ready port=%d", server.port)

    async def _create_databases(self) -> dict[str, str]:
        import asyncpg

        connection = await asyncpg.connect(self.postgres.url(), timeout=10)
        try:
            existing = {row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")}
            urls = {}
            for component in self.components:
                name = database_name(component)
                if name not in existing:
                    await connection.execute(f'CREATE DATABASE "{name}"')
                urls[component.service_id] = self.postgres.url(name)
            return urls
        finally:
            await connection.close()

    # --- services ---------------------------------------------------------

    def _start_services(self, specs: list[ProcessSpec]) -> None:
        logs = logs_dir(self.state_dir)
        logs.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            record = ProcessRecord(name=spec.name, kind="service", state=ProcessState.STARTING, port=spec.http_port,
                                   log=str(logs / f"{spec.name}.log"), service_id=spec.component.service_id,
                                   component=f"{spec.component.app}/{spec.component.name}")
            self.state.services.append(record)
            self.services.append(ServiceProcess(spec, record, self))
        self.save()
        self.service_tasks = [asyncio.create_task(service.keep_running()) for service in self.services]

    async def _watch(self) -> None:
        async with open_client(self.state.redis_url, self.state.cluster) as client:
            health = asyncio.create_task(self._check_health(client))
            servers_watch = asyncio.create_task(self._watch_servers())
            await self.stop_requested.wait()
            health.cancel()
            servers_watch.cancel()
            await asyncio.gather(health, servers_watch, return_exceptions=True)

    async def _check_health(self, client) -> None:
        while True:
            by_service: dict[str, list[ServiceProcess]] = {}
            for service in self.services:
                if service.record.state in (ProcessState.STARTING, ProcessState.RUNNING):
                    by_service.setdefault(service.spec.component.service_id, []).append(service)
            await asyncio.gather(*(self._check_service(client, sid, group) for sid, group in by_service.items()))
            self.save()
            starting = any(s.record.state == ProcessState.STARTING for s in self.services)
            await asyncio.sleep(HEALTH_INTERVAL_STARTING_S if starting else HEALTH_INTERVAL_RUNNING_S)

    async def _check_service(self, client, service_id: str, processes: list[ServiceProcess]) -> None:
        """Send one health request per process of a service and mark the processes that replied.

        All instances of a service read one request stream, so a health
        request reaches whichever instance reads it first. The reply names
        that instance's pid, and that pid picks the process to mark.
        """
        replies = await asyncio.gather(*(_health(client, service_id) for _ in processes))
        replied = [reply for reply in replies if reply is not None]
        pids = {_instance_pid(reply) for reply in replied}
        for service in processes:
            if None in pids or service.record.pid in pids:
                service.mark_health(True)
            elif not replied:
                service.mark_health(False)

    async def _watch_servers(self) -> None:
        named = list(zip(self.state.servers, [*self.redis_nodes, self.postgres]))
        while True:
            await asyncio.sleep(SERVER_WATCH_INTERVAL_S)
            for record, server in named:
                if record.state == ProcessState.RUNNING and server.process.poll() is not None:
                    await self._restart_server(record, server)

    async def _restart_server(self, record: ProcessRecord, server) -> None:
        logger.warning("server=%s pid=%s exited code=%s; starting it again on port %d",
                       record.name, record.pid, server.process.returncode, server.port)
        try:
            await asyncio.to_thread(server.start)
        except servers.ServerError:
            logger.exception("server=%s could not start again on port %d; giving up on it", record.name, server.port)
            record.state = ProcessState.FAILED
            record.pid = None
            record.health = "failing"
            self.save()
            return
        record.pid = server.process.pid
        record.create_time = create_time_of(server.process.pid)
        record.started_at = time.time()
        record.restarts += 1
        self.save()

    # --- stopping ---------------------------------------------------------

    async def _stop_everything(self) -> None:
        if self.state.state != StackState.FAILED:
            self.state.state = StackState.STOPPING
        self.save()
        for level in _stop_levels(self.services):
            await asyncio.gather(*(service.stop() for service in level))
            self.save()
        for task in self.service_tasks:
            task.cancel()
        await asyncio.to_thread(self._stop_servers)
        if self.state.state != StackState.FAILED:
            self.state.state = StackState.STOPPED
        self.save()
        logger.info("local stack stopped")

    def _stop_servers(self) -> None:
        order = [("postgres", self.postgres)] if self.postgres else []
        order += [(record.name, node) for record, node in zip(self.state.servers, self.redis_nodes)]
        for name, server in order:
            server.stop()
            record = self.state.find(name)
            record.state = ProcessState.STOPPED
            record.pid = None
            self.save()


def _start_or_clean_up(server: servers.RedisServer | servers.PostgresServer) -> None:
    """Start ``server``; if it does not come up, stop the process that start() left behind."""
    try:
        server.start()
    except BaseException:
        server.stop()
        raise


def _server_record(name: str, kind: str, pid: int, port: int, log_path: Path) -> ProcessRecord:
    return ProcessRecord(name=name, kind=kind, state=ProcessState.RUNNING, pid=pid, create_time=create_time_of(pid),
                         port=port, started_at=time.time(), health="ok", log=str(log_path))


def _cluster_shape(nodes: int) -> tuple[int, int]:
    """Return (masters, replicas per master) for a cluster of ``nodes`` nodes."""
    if nodes >= 6 and nodes % 2 == 0:
        return nodes // 2, 1
    if nodes >= 3:
        return nodes, 0
    raise VvkitError(f"invalid [redis] nodes = {nodes} in vvkit.toml: a Redis Cluster needs at least 3 nodes")


async def _health(client, service_id: str) -> dict | None:
    """Return the reply of the ``health`` RPC, or None when no ``ok`` reply came in time."""
    try:
        reply = await client.call(service_id, "health", timeout=HEALTH_TIMEOUT_S)
    except Exception as exc:  # a timeout, a remote error or a lost connection all mean "not healthy now"
        logger.debug("health service=%s failed: %r", service_id, exc)
        return None
    if isinstance(reply, dict) and reply.get("status") == "ok":
        return reply
    return None


def _instance_pid(reply: dict) -> int | None:
    """Return the pid in a health reply's instance name (``<host>-<pid>-<random>``), or None."""
    parts = str(reply.get("instance") or "").rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1])
    return None


def _depth(spec: ProcessSpec, by_unit: dict[str, ProcessSpec], seen: frozenset = frozenset()) -> int:
    """Return how many levels of depends_on lie below ``spec`` (0 for a unit without dependencies)."""
    name = _unit_of(spec)
    if name in seen:
        raise VvkitError(f"depends_on forms a cycle through {name}: fix the components' config.yml")
    below = [_depth(by_unit[dep], by_unit, seen | {name}) + 1 for dep in spec.depends_on if dep in by_unit]
    return max(below, default=0)


def _unit_of(spec: ProcessSpec) -> str:
    # depends_on entries name components by their compose name, whatever instance runs.
    return compose_name(spec.component.app, spec.component.name)


def _order_key(spec: ProcessSpec, specs: list[ProcessSpec]) -> tuple[bool, int, str]:
    """Sort key of the start order: dependencies first, the api gateway after every other service."""
    by_unit = {_unit_of(other): other for other in specs}
    return spec.http_port is not None, _depth(spec, by_unit), spec.name


def _in_start_order(specs: list[ProcessSpec]) -> list[ProcessSpec]:
    return sorted(specs, key=lambda spec: _order_key(spec, specs))


def _stop_levels(services: list[ServiceProcess]) -> list[list[ServiceProcess]]:
    """Group the services into levels to stop one after another: dependents before their dependencies."""
    specs = [service.spec for service in services]
    levels: dict[tuple, list[ServiceProcess]] = {}
    for service in services:
        levels.setdefault(_order_key(service.spec, specs)[:2], []).append(service)
    return [levels[key] for key in sorted(levels, reverse=True)]


def _hold_lock(state_dir: Path):
    """Take the workspace's supervisor lock, or raise when another supervisor holds it."""
    folder = run_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise VvkitError(f"another supervisor runs for {state_dir.parent}: stop it with 'vvkit down'") from None
    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--component", action="append", default=[], help="APP/COMPONENT to run (default: all)")
    parser.add_argument("--api-port", type=int, default=None, help="HTTP port of the api component")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    workspace = Workspace.load(options.workspace)
    lock = _hold_lock(workspace.state_dir)
    try:
        model, components = load_model(workspace, options.component)
        api_port = options.api_port or model.settings.api_port
        return asyncio.run(Supervisor(model, components, api_port).run())
    finally:
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
