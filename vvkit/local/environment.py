"""Process names and environments of the local runner, one set per component.

The deployment model (``vvkit.deploy.model``) decides what runs, exactly as
for compose and Kubernetes: one unit per component or named instance, each
with ``replicas`` copies. Every process gets the environment of
``component_environment(local=True)``, so a service gets the same variables
under ``vvkit up --local`` as in its container. Only the addresses differ:
the transport, database and HTTP port point at the servers and ports that
the supervisor picked on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass

from vvkit.deploy.model import DeploymentModel, Unit, build_model, component_environment
from vvkit.errors import VvkitError
from vvkit.workspace import Component, Workspace


@dataclass(frozen=True)
class ProcessSpec:
    """One ``vv-start`` process: a unit, or one replica of it."""

    name: str  # unique in the stack: the unit name ("shop-echo"), plus "-<n>" per replica
    unit: str  # the unit's name, which depends_on entries use
    component: Component
    environment: dict[str, str]
    depends_on: tuple[str, ...] = ()  # unit names started before this one and stopped after it
    http_port: int | None = None


def database_name(component: Component) -> str:
    """Return the PostgreSQL database of a component on the local server: its service id."""
    return component.service_id


def load_model(workspace: Workspace, requested: list[str]) -> tuple[DeploymentModel, list[Component]]:
    """Check the workspace and return its model with the components named in ``requested`` (all when empty)."""
    model = build_model(workspace)
    components = [plan.component for plan in model.components]
    if not requested:
        return model, components
    chosen = [c for c in components if f"{c.app}/{c.name}" in requested or c.name in requested]
    missing = set(requested) - {f"{c.app}/{c.name}" for c in chosen} - {c.name for c in chosen}
    if missing:
        raise VvkitError(f"no component {sorted(missing)[0]!r} in {workspace.services_dir}: see 'vvkit list'")
    return model, chosen


def process_specs(
    model: DeploymentModel,
    components: list[Component],
    transport_url: str,
    cluster: bool,
    database_url: dict[str, str],
    api_port: int,
) -> list[ProcessSpec]:
    """Return the processes to start for ``components``; ``database_url`` maps service ids to DSNs."""
    chosen = {component.path for component in components}
    specs = []
    for plan in model.components:
        if plan.component.path not in chosen:
            continue
        for unit in plan.units:
            environment = component_environment(
                model.workspace, unit.component, unit.instance, config=plan.config, local=True,
                transport=transport_url, cluster=cluster, database=database_url[unit.component.service_id],
                http_port=api_port,
            )
            specs += _replicas(unit, environment, api_port if unit.is_api else None)
    return specs


def _replicas(unit: Unit, environment: dict[str, str], http_port: int | None) -> list[ProcessSpec]:
    if unit.replicas <= 1:
        return [ProcessSpec(unit.name, unit.name, unit.component, environment, unit.depends_on, http_port)]
    return [
        ProcessSpec(f"{unit.name}-{index}", unit.name, unit.component, environment, unit.depends_on, http_port)
        for index in range(1, unit.replicas + 1)
    ]
