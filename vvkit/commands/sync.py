"""``vvkit sync``: regenerate the deployment from the workspace."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vvkit import console
from vvkit.deploy.compose import COMPOSE_FILE, render_compose
from vvkit.deploy.errors import DeployError
from vvkit.deploy.kubernetes import render_kubernetes, stale_files
from vvkit.deploy.model import DeploymentModel, build_model
from vvkit.deploy.output import FileChange, plan_changes, unified_diff, write_files
from vvkit.options import WorkspaceOption, open_workspace

DEFAULT_KUBERNETES_DIR = Path("deploy/kubernetes")


class OutOfDate(DeployError):
    """``--check`` found generated files that differ from the ones on disk."""


class Target(str, enum.Enum):
    compose = "compose"
    kubernetes = "kubernetes"


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)


def sync(
    workspace_path: WorkspaceOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 and print a unified diff when the files differ.")
    ] = False,
    target: Annotated[Target, typer.Option("--target", help="What to generate.")] = Target.compose,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Compose: the file (default docker-compose.yml). Kubernetes: the folder (default deploy/kubernetes). "
            "Relative to the workspace root.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate docker-compose.yml or Kubernetes manifests from services/ and vvkit.toml."""
    workspace = open_workspace(workspace_path)
    model = build_model(workspace)
    changes = _render(model, target, output)

    if check:
        diff = unified_diff(changes, workspace.root)
        if diff:
            # Written past Rich, which would expand tabs and replace :emoji: codes.
            console.out.file.write(diff)
            console.out.file.flush()
            changed = ", ".join(_relative(c.path, workspace.root) for c in changes if c.action != "identical")
            command = "vvkit sync" if target is Target.compose else "vvkit sync --target kubernetes"
            raise OutOfDate(f"out of date: {changed}; run '{command}' to update")
        console.err.print("up to date")
        return

    write_files(changes, workspace.root)
    console.err.print(summary_table(model))


def _render(model: DeploymentModel, target: Target, output: Path | None) -> list[FileChange]:
    root = model.workspace.root
    if target is Target.compose:
        path = root / (output or COMPOSE_FILE)
        return plan_changes({path: render_compose(model, path)})

    folder = root / (output or DEFAULT_KUBERNETES_DIR)
    files = render_kubernetes(model, folder)
    return plan_changes(files, stale_files(folder, files))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def summary_table(model: DeploymentModel) -> Table:
    """Return a table of the services, their instances, replicas, databases and published ports."""
    table = Table(title="deployment", title_justify="left")
    for column in ("service", "instances", "replicas", "database", "ports"):
        table.add_column(column, overflow="fold")
    for plan in model.components:
        ports = ", ".join(port.spec for unit in plan.units for port in unit.ports) or "-"
        instances = ", ".join(plan.config.instances) or "-"
        table.add_row(plan.component.service_id, instances, str(plan.config.replicas), plan.database.service, ports)
    return table
