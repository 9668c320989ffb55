"""Workspace-wide deployment settings read from ``vvkit.toml``.

Each table and key is optional; a missing one takes its default. An unknown
table or key (often a typo such as ``redis.clustr``) and a key of the wrong
type are rejected with their dotted path, such as ``api.port``.

=========================  =========================================  ==================
key                        meaning                                    default
=========================  =========================================  ==================
workspace.name             project name, default namespace            the folder name
registry.host              registry the images are pushed to          ``localhost:5000``
registry.tag               image tag                                  ``latest``
redis.cluster              Redis Cluster (true) or one Redis (false)  ``true``
redis.nodes                nodes of the Redis Cluster                 ``6``
api.port                   host port of every ``api`` component       ``8080``
kubernetes.namespace       namespace of the Kubernetes manifests      workspace.name
kubernetes.ingress_host    host of an Ingress for each ``api``        no Ingress
=========================  =========================================  ==================
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from vvkit.deploy.errors import InvalidConfig
from vvkit.workspace import CONFIG_FILE, Workspace

DEFAULT_REGISTRY_HOST = "localhost:5000"
DEFAULT_REGISTRY_PORT = 5000
DEFAULT_TAG = "latest"
DEFAULT_REDIS_NODES = 6
# redis-cli --cluster create refuses fewer than three masters.
MIN_REDIS_NODES = 3
DEFAULT_API_HOST_PORT = 8080

# The tables and keys of vvkit.toml, in the order of the table above.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "workspace": ("name",),
    "registry": ("host", "tag"),
    "redis": ("cluster", "nodes"),
    "api": ("port",),
    "kubernetes": ("namespace", "ingress_host"),
}


@dataclass(frozen=True)
class DeploySettings:
    """The ``vvkit.toml`` values that shape a deployment."""

    name: str
    registry_host: str
    tag: str
    redis_cluster: bool
    redis_nodes: int
    api_port: int
    namespace: str
    ingress_host: str | None

    @property
    def registry_port(self) -> int:
        """Host port of the local registry: the port in ``registry_host``, else 5000."""
        _, colon, port = self.registry_host.rpartition(":")
        return int(port) if colon and port.isdigit() else DEFAULT_REGISTRY_PORT


def read_settings(workspace: Workspace) -> DeploySettings:
    """Read and check the deployment keys of ``vvkit.toml``; raise ``InvalidConfig`` naming the key."""
    reader = _TomlReader(workspace.root / CONFIG_FILE, workspace.settings)
    reader.check_known_keys()
    name = reader.get("workspace", "name", str, workspace.root.name)
    settings = DeploySettings(
        name=name,
        registry_host=reader.get("registry", "host", str, DEFAULT_REGISTRY_HOST).rstrip("/"),
        tag=reader.get("registry", "tag", str, DEFAULT_TAG),
        redis_cluster=reader.get("redis", "cluster", bool, True),
        redis_nodes=reader.get("redis", "nodes", int, DEFAULT_REDIS_NODES),
        api_port=reader.get("api", "port", int, DEFAULT_API_HOST_PORT),
        namespace=reader.get("kubernetes", "namespace", str, name),
        ingress_host=reader.get("kubernetes", "ingress_host", str, None),
    )

    if settings.redis_cluster and settings.redis_nodes < MIN_REDIS_NODES:
        reader.fail("redis", "nodes", f"a Redis Cluster needs at least {MIN_REDIS_NODES} nodes; set nodes = 6 or cluster = false")
    if not 1 <= settings.api_port <= 65535:
        reader.fail("api", "port", "use a port number from 1 to 65535")
    if not settings.tag:
        reader.fail("registry", "tag", 'the tag is empty; use for example "latest"')
    return settings


class _TomlReader:
    def __init__(self, path: Path, settings: dict) -> None:
        self.path = path
        self.settings = settings

    def check_known_keys(self) -> None:
        """Reject a table or key that is not in ``KNOWN_KEYS``, suggesting the closest known name."""
        for table, section in self.settings.items():
            if table not in KNOWN_KEYS:
                kind = "table" if isinstance(section, dict) else "top-level key"
                self.fail(table, None, _unknown(kind, table, KNOWN_KEYS, "tables"))
            if not isinstance(section, dict):
                self.fail(table, None, "expected a table")
            for key in section:
                if key not in KNOWN_KEYS[table]:
                    self.fail(table, key, _unknown("key", key, KNOWN_KEYS[table], f"{table} keys"))

    def get(self, table: str, key: str, kind: type, default):
        section = self.settings.get(table, {})
        if not isinstance(section, dict):
            self.fail(table, None, "expected a table")
        value = section.get(key, default)
        # bool is a subclass of int, so "nodes = true" must be caught explicitly.
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            self.fail(table, key, f"expected {kind.__name__}, got {value!r}")
        return value

    def fail(self, table: str, key: str | None, problem: str):
        # Dotted TOML key paths, "api.port": square brackets would read as Rich markup.
        raise InvalidConfig(self.path, f"{table}.{key}" if key else table, None, problem)


def _unknown(kind: str, name: str, known, known_label: str) -> str:
    message = f"unknown {kind}; known {known_label}: {', '.join(known)}"
    close = difflib.get_close_matches(name, known, n=1)
    return f"{message} (did you mean {close[0]!r}?)" if close else message
