"""Images, commands and probes of the servers that every deployment carries.

Both renderers take these from here, so compose and Kubernetes run the same
versions and the same checks. Images are pinned so that a sync months later
produces the same deployment.
"""

from __future__ import annotations

POSTGRES_IMAGE = "postgres:16.4"
REDIS_IMAGE = "redis:7.4.1"
REGISTRY_IMAGE = "registry:2.8.3"
REGISTRY_CONTAINER_PORT = 5000
REDIS_PORT = 6379
POSTGRES_PORT = 5432
REDIS_CLUSTER_SLOTS = 16384
REDIS_CLUSTER_NODE_TIMEOUT_MS = 5000
# Three masters with one replica each needs six nodes; fewer nodes get no replicas.
REDIS_REPLICAS_MIN_NODES = 6

# Interpolated variables for credentials; their defaults are placeholders,
# never real passwords. Kubernetes gets the same placeholders in its Secret.
POSTGRES_USER_VARIABLE = "VV_POSTGRES_USER"
POSTGRES_PASSWORD_VARIABLE = "VV_POSTGRES_PASSWORD"
PLACEHOLDER_SECRETS = {"user": "vv", "password": "change-me"}
REGISTRY_PROXY_VARIABLES = {
    "REGISTRY_PROXY_PASSWORD": "VV_REGISTRY_PROXY_PASSWORD",
    "REGISTRY_PROXY_REMOTEURL": "VV_REGISTRY_PROXY_URL",
    "REGISTRY_PROXY_USERNAME": "VV_REGISTRY_PROXY_USERNAME",
}

# Calls the health RPC of the container's own service through the runtime's
# Client and exits 0 on a reply, 1 on an error. It exits right after the call
# because a probe needs nothing more, and skipping the client's shutdown keeps
# it within the probe timeout.
# NOTE: any replica of the service may reply, so this proves that the service
# serves requests, not that this very container does.
HEALTH_PROBE = "\n".join(
    (
        "import asyncio, os, sys",
        "from vv import Client",
        "async def probe():",
        "    cluster = os.environ.get('CLUSTER') == 'true'",
        "    async with Client(os.environ['TRANSPORT'], cluster=cluster) as client:",
        "        service = os.environ['APP'] + '.' + os.environ['COMPONENT']",
        "        try:",
        "            await client.call(service, 'health', timeout=3.0)",
        "        except Exception as exc:",
        "            print(f'health check of {service} failed: {exc!r}', file=sys.stderr, flush=True)",
        "            os._exit(1)",
        "        os._exit(0)",
        "asyncio.run(probe())",
    )
)
HEALTH_PROBE_COMMAND = ("python", "-c", HEALTH_PROBE)



def postgres_ready_command(port: int = POSTGRES_PORT) -> str:
    """Return a shell check that passes once PostgreSQL accepts TCP connections.

    It connects over TCP on purpose. On a fresh volume, the postgres image's
    docker-entrypoint.sh first runs a socket-only temporary server for its
    setup scripts, so a check over the Unix socket would pass too early.
    """
    return f'pg_isready --host 127.0.0.1 --port {port} --username "$POSTGRES_USER" --dbname "$POSTGRES_DB"'


def redis_ping_command(port: int = REDIS_PORT) -> str:
    return f"redis-cli -h 127.0.0.1 -p {port} ping | grep -q PONG"


def redis_cluster_ready_command(port: int = REDIS_PORT) -> str:
    """Return a shell check that passes only when this node reports cluster_state:ok and every slot served."""
    return (
        f"info=$(redis-cli -h 127.0.0.1 -p {port} cluster info) && "
        "echo \"$info\" | grep -q '^cluster_state:ok' && "
        f"echo \"$info\" | grep -q '^cluster_slots_ok:{REDIS_CLUSTER_SLOTS}'"
    )


def redis_replicas(nodes: int) -> int:
    return 1 if nodes >= REDIS_REPLICAS_MIN_NODES else 0


def redis_cluster_create_script(nodes: list[str]) -> str:
    """Return a shell script that waits for every ``host:port`` node and creates the cluster once.

    It exits 0 without changes when the first node already reports
    ``cluster_state:ok``, so a restarted stack keeps its cluster. The nodes
    are given to ``redis-cli --cluster create`` as IP addresses because
    ``redis-cli`` releases before 7.0 accept no host names there.
    """
    replicas = redis_replicas(len(nodes))
    first_host, _, first_port = nodes[0].rpartition(":")
    return "\n".join(
        (
            "set -e",
            f"nodes='{' '.join(nodes)}'",
            "for node in $nodes; do",
            '  until redis-cli -h "${node%:*}" -p "${node##*:}" ping >/dev/null 2>&1; do sleep 1; done',
            "done",
            f"if redis-cli -h {first_host} -p {first_port} cluster info | grep -q '^cluster_state:ok'; then",
            "  echo 'cluster exists'; exit 0",
            "fi",
            "addresses=''",
            "for node in $nodes; do",
            '  addresses="$addresses $(getent hosts "${node%:*}" | cut -d" " -f1):${node##*:}"',
            "done",
            f"redis-cli --cluster create $addresses --cluster-replicas {replicas} --cluster-yes",
        )
    )


def redis_cluster_server_args(announce_hostname: str) -> list[str]:
    """Return the ``redis-server`` arguments of one cluster node that announces ``announce_hostname``."""
    return [
        "redis-server",
        "--port", str(REDIS_PORT),
        "--protected-mode", "no",
        "--appendonly", "yes",
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", str(REDIS_CLUSTER_NODE_TIMEOUT_MS),
        "--cluster-announce-hostname", announce_hostname,
        "--cluster-preferred-endpoint-type", "hostname",
    ]  # fmt: skip
