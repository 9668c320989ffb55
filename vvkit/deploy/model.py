"""The deployment model: what runs, built once from the workspace for every target.

``build_model`` scans the component folders (through ``Workspace``), reads
each ``config.yml`` and ``.env``, checks the whole set, and returns a
``DeploymentModel``. The compose and Kubernetes renderers only format it, so
a new target is a new renderer and never a second scanner.

``component_environment`` is the single source of the variables that
``vv-start`` receives. The compose file, the Kubernetes manifests and the
local runner all take them from it.
"""

from __future__ import annotations

import ast
import graphlib
from dataclasses import dataclass, replace
from pathlib import Path

from vvkit.deploy.config import MAX_PORT, ComponentConfig, PortMapping, read_component_config
from vvkit.deploy.errors import DeployError
from vvkit.deploy.infrastructure import POSTGRES_PORT, REDIS_PORT
from vvkit.deploy.settings import DeploySettings, read_settings
from vvkit.errors import InvalidName
from vvkit.names import check_label, compose_name
from vvkit.workspace import Component, Workspace

SERVICE_FILE = "service.py"
# Base classes that make a component class: vv.Service, and vv.gateway.Gateway
# (a Service subclass) that the api blueprint uses.
SERVICE_BASES = frozenset({"Service", "Gateway"})
API_COMPONENT = "api"

# Folder inside the image to which the blueprints' Dockerfile copies the component.
CONTAINER_SERVICE_DIR = "/service"
# The gateway listens here inside a container; the host port comes from api.port.
CONTAINER_HTTP_PORT = 80
REDIS_HOST = "redis"
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_LOOP = "asyncio"

# vvkit writes no credentials into the generated files (a user's own .env or
# config.yml values excepted). Containers get them as PGUSER and PGPASSWORD,
# which asyncpg and libpq read when the DSN has none, from compose variables
# or from keys of this Kubernetes Secret.
POSTGRES_SECRET = "vv-postgres"
SECRET_ENVIRONMENT = {"PGPASSWORD": "password", "PGUSER": "user"}


@dataclass(frozen=True)
class Database:
    """The PostgreSQL server of one component: ``service`` is its host name, ``name`` the database."""

    service: str
    name: str


@dataclass(frozen=True)
class Unit:
    """One deployable service: a compose service, a Kubernetes Deployment.

    A component without named instances has one unit named
    ``<app>-<component>``; with instances, one ``<app>-<component>-<instance>``
    per instance. ``environment`` contains literal values, and
    ``secret_environment`` maps each variable taken from the Secret to its key.
    """

    name: str
    component: Component
    instance: str | None
    replicas: int
    environment: dict[str, str]
    secret_environment: dict[str, str]
    ports: tuple[PortMapping, ...]
    depends_on: tuple[str, ...]
    image_name: str
    database: Database
    resources: dict[str, dict[str, str]]

    @property
    def is_api(self) -> bool:
        return self.component.name == API_COMPONENT


@dataclass(frozen=True)
class ComponentPlan:
    """A component with its settings and the units made from it."""

    component: Component
    config: ComponentConfig
    class_name: str
    database: Database
    units: tuple[Unit, ...]


@dataclass(frozen=True)
class DeploymentModel:
    """Everything a renderer needs, sorted so that output is deterministic."""

    workspace: Workspace
    settings: DeploySettings
    components: tuple[ComponentPlan, ...]

    @property
    def units(self) -> list[Unit]:
        return [unit for plan in self.components for unit in plan.units]

    @property
    def databases(self) -> list[Database]:
        return [plan.database for plan in self.components]

    @property
    def redis_nodes(self) -> list[str]:
        """Names of the Redis Cluster nodes, empty for a single Redis."""
        if not self.settings.redis_cluster:
            return []
        return [f"redis-node-{index}" for index in range(self.settings.redis_nodes)]

    def image(self, unit: Unit) -> str:
        return f"{self.settings.registry_host}/{unit.image_name}:{self.settings.tag}"


def database_of(component: Component) -> Database:
    return Database(service=f"pg-{compose_name(component.app, component.name)}", name=component.name)


def shared_environment(settings: DeploySettings, *, transport: str | None = None, cluster: bool | None = None) -> dict[str, str]:
    """Return the defaults that every component shares: TRANSPORT, CLUSTER, LOG_LEVEL and VV_LOOP.

    Kubernetes keeps these in one ConfigMap; ``component_environment``
    starts from them.
    """
    use_cluster = settings.redis_cluster if cluster is None else cluster
    return {
        "CLUSTER": "true" if use_cluster else "false",
        "LOG_LEVEL": DEFAULT_LOG_LEVEL,
        "TRANSPORT": transport or f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        "VV_LOOP": DEFAULT_LOOP,
    }


def component_environment(
    workspace: Workspace,
    component: Component,
    instance: str | None = None,
    *,
    config: ComponentConfig | None = None,
    local: bool = False,
    transport: str | None = None,
    cluster: bool | None = None,
    database: str | None = None,
    http_port: int | None = None,
) -> dict[str, str]:
    """Return the environment that ``vv-start`` gets for one component instance, sorted by name.

    The variables are SERVICE_NAME, LIBRARY, APP, COMPONENT, TRANSPORT,
    CLUSTER, DATABASE, LOG_LEVEL and VV_LOOP, plus INSTANCE for a named
    instance and HTTP_PORT for the ``api`` component. Variables from the
    component's ``.env`` replace these defaults, and ``env`` in its
    ``config.yml`` replaces both. Values are literal: nothing in them is
    interpolated.

    Container defaults (``local=False``, used by compose and Kubernetes):
    the component folder is at ``/service``, Redis at ``redis:6379``,
    PostgreSQL at ``pg-<app>-<component>:5432`` with the credentials in the
    separate PGUSER and PGPASSWORD variables (not returned here), and the
    gateway listens on port 80.

    Local runner (``local=True``): SERVICE_NAME and LIBRARY are the
    component's absolute folder, and the caller passes the servers it
    started: ``transport`` (a Redis URL, required), ``cluster`` (default: the
    ``vvkit.toml`` setting), ``database`` (a full DSN with credentials;
    without it DATABASE is left out) and ``http_port`` (default: ``[api]
    port`` of ``vvkit.toml``). ``config`` saves reading ``config.yml`` again
    when the caller already has it. Raises ``InvalidConfig`` for a bad
    ``config.yml``, ``.env`` or ``vvkit.toml``.
    """
    settings = read_settings(workspace)
    if config is None:
        config = read_component_config(component.path)
    if local and transport is None:
        raise ValueError("component_environment(local=True) needs the transport URL of the Redis it runs against")

    if local:
        folder = str(component.path)
        database_url = database
        port = settings.api_port if http_port is None else http_port
    else:
        folder = CONTAINER_SERVICE_DIR
        target = database_of(component)
        database_url = database or f"postgresql://{target.service}:{POSTGRES_PORT}/{target.name}"
        port = CONTAINER_HTTP_PORT if http_port is None else http_port

    environment = {
        "APP": component.app,
        "COMPONENT": component.name,
        "LIBRARY": folder,
        "SERVICE_NAME": folder,
        **shared_environment(settings, transport=transport, cluster=cluster),
    }
    if database_url is not None:
        environment["DATABASE"] = database_url
    if instance is not None:
        environment["INSTANCE"] = instance
    if component.name == API_COMPONENT:
        environment["HTTP_PORT"] = str(port)

    environment.update(config.dotenv)
    environment.update(config.env)
    return dict(sorted(environment.items()))


def build_model(workspace: Workspace) -> DeploymentModel:
    """Scan the workspace and check it as a whole; raise a ``DeployError`` naming the file and fix."""
    settings = read_settings(workspace)
    components = workspace.components()
    if not components:
        raise DeployError(
            f"no components in {workspace.services_dir}: add one with 'vvkit new APP/COMPONENT', then run 'vvkit sync'"
        )
    known = {(c.app, c.name) for c in components}
    plans = tuple(_plan_component(workspace, settings, component, known) for component in components)

    _check_unique_names(workspace, plans)
    _check_no_cycles(plans)
    _check_host_ports(workspace, settings, plans)
    return DeploymentModel(workspace=workspace, settings=settings, components=plans)


def _plan_component(
    workspace: Workspace, settings: DeploySettings, component: Component, known: set[tuple[str, str]]
) -> ComponentPlan:
    _check_folder_names(workspace, component)
    class_name = find_service_class(component)
    config = read_component_config(component.path)
    database = database_of(component)

    published = _unit_ports(workspace, settings, component, config, 0)
    if published and config.replicas > 1:
        raise DeployError(
            f"{component.path / 'config.yml'}: {config.replicas} replicas cannot all publish host port "
            f"{published[0].host} ({published[0].origin}); set replicas: 1, or use named instances, "
            "which get host ports of their own"
        )

    depends_on = _dependency_units(component, config, known)
    secrets = {name: key for name, key in SECRET_ENVIRONMENT.items() if name not in config.env and name not in config.dotenv}
    units = tuple(
        Unit(
            name=compose_name(component.app, component.name) + (f"-{instance}" if instance else ""),
            component=component,
            instance=instance,
            replicas=config.replicas,
            environment=component_environment(workspace, component, instance, config=config),
            secret_environment=secrets,
            ports=_unit_ports(workspace, settings, component, config, index),
            depends_on=depends_on,
            image_name=compose_name(component.app, component.name),
            database=database,
            resources=config.resources,
        )
        for index, instance in enumerate(config.instances or (None,))
    )
    return ComponentPlan(component=component, config=config, class_name=class_name, database=database, units=units)


def _unit_ports(
    workspace: Workspace, settings: DeploySettings, component: Component, config: ComponentConfig, index: int
) -> tuple[PortMapping, ...]:
    """Return the host ports one unit publishes.

    Named instances of one component would all claim the same host port, so
    the instance at ``index`` in name order publishes each host port plus
    ``index``: with ``api.port = 8080``, instances ``eu`` and ``us`` get 8080
    and 8081.
    """
    ports = list(config.ports)
    if component.name == API_COMPONENT:
        ports.append(PortMapping(settings.api_port, CONTAINER_HTTP_PORT, "tcp", f"api.port in {workspace.root}/vvkit.toml"))
    if index:
        ports = [
            replace(port, host=port.host + index, origin=f"{port.origin}, plus {index} for instance number {index + 1}")
            for port in ports
        ]
    return tuple(sorted(ports, key=lambda port: (port.host, port.container, port.protocol)))


def _check_folder_names(workspace: Workspace, component: Component) -> None:
    try:
        check_label(component.app, "app")
        check_label(component.name, "component")
    except InvalidName as exc:
        raise DeployError(f"{component.path.relative_to(workspace.root)}: {exc}; rename the folder") from None


def find_service_class(component: Component) -> str:
    """Return the name of the one ``Service`` subclass in the component's ``service.py``.

    NOTE: only classes whose base is named in ``SERVICE_BASES`` are found,
    such as ``class X(Service)``, ``class X(vv.Service)`` and
    ``class X(Gateway)``. A class that inherits through a base class of its
    own is not seen. Finding those needs importing the module, which
    ``sync`` avoids so that it never runs user code.
    """
    path = component.path / SERVICE_FILE
    if not path.is_file():
        raise DeployError(f"{component.path}: no {SERVICE_FILE}; add one with a Service subclass, or remove the folder")
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        raise DeployError(f"invalid {path}:{exc.lineno}: {exc.msg}; fix the Python syntax") from None

    found = [node.name for node in tree.body if isinstance(node, ast.ClassDef) and _inherits_service(node)]
    if not found:
        raise DeployError(f"{path}: no Service subclass; define one class that inherits from vv.Service")
    if len(found) > 1:
        raise DeployError(f"{path}: {len(found)} Service subclasses ({', '.join(found)}); keep one class per component")
    return found[0]


def _inherits_service(node: ast.ClassDef) -> bool:
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in SERVICE_BASES:
            return True
        if isinstance(base, ast.Attribute) and base.attr in SERVICE_BASES:
            return True
    return False


def _dependency_units(component: Component, config: ComponentConfig, known: set[tuple[str, str]]) -> tuple[str, ...]:
    names = []
    for dependency in config.depends_on:
        app = dependency.app or component.app
        if (app, dependency.component) not in known:
            raise DeployError(
                f"invalid {dependency.origin}: depends_on names {app}/{dependency.component}, which does not exist; "
                f"create it with 'vvkit new {app}/{dependency.component}' or remove the entry"
            )
        if (app, dependency.component) == (component.app, component.name):
            raise DeployError(f"invalid {dependency.origin}: a component cannot depend on itself; remove the entry")
        names.append(compose_name(app, dependency.component))
    return tuple(sorted(set(names)))


def _check_unique_names(workspace: Workspace, plans: tuple[ComponentPlan, ...]) -> None:
    """Reject two things that would get one compose service name, such as ``a-b/c`` and ``a/b-c``."""
    owners: dict[str, str] = {name: "the generated infrastructure" for name in ("registry", "redis", "redis-cluster-create")}
    for plan in plans:
        folder = str(plan.component.path.relative_to(workspace.root))
        claims = [(unit.name, folder + (f" instance {unit.instance}" if unit.instance else "")) for unit in plan.units]
        claims.append((plan.database.service, f"the database of {folder}"))
        for name, owner in claims:
            if name in owners:
                raise DeployError(
                    f"{owner} and {owners[name]} both map to the service name {name!r}; rename one of the folders or instances"
                )
            owners[name] = owner


def _check_no_cycles(plans: tuple[ComponentPlan, ...]) -> None:
    graph = {compose_name(p.component.app, p.component.name): p.units[0].depends_on for p in plans}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise DeployError(f"depends_on forms a cycle: {cycle}; remove one of these entries from its config.yml") from None


def _check_host_ports(workspace: Workspace, settings: DeploySettings, plans: tuple[ComponentPlan, ...]) -> None:
    used: dict[tuple[int, str], str] = {
        (settings.registry_port, "tcp"): f"the registry (registry.host in {workspace.root}/vvkit.toml)"
    }
    for unit in (unit for plan in plans for unit in plan.units):
        for port in unit.ports:
            key = (port.host, port.protocol)
            here = f"{unit.name} ({port.origin})"
            if port.host > MAX_PORT:
                raise DeployError(f"{here} would publish host port {port.host}, above {MAX_PORT}; choose a lower port")
            if key in used:
                raise DeployError(f"host port {port.host}/{port.protocol} is published by {used[key]} and {here}; change one of them")
            used[key] = here
