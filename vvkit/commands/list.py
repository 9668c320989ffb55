"""``vvkit list``: the components of the workspace."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from vvkit.console import err, out
from vvkit.deploy.errors import DeployError
from vvkit.deploy.model import find_service_class
from vvkit.options import JsonOption, WorkspaceOption, open_workspace


def list_components(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Show every app and component with its blueprint and service class."""
    ws = open_workspace(workspace)
    rows = []
    for component in ws.components():
        try:
            service_class = find_service_class(component)
        except DeployError as exc:
            service_class = "?"
            err.print(f"[yellow]warning:[/] {escape(str(exc))}")
        rows.append({
            "app": component.app, "component": component.name, "blueprint": component.blueprint,
            "class": service_class, "path": str(component.path.relative_to(ws.root)),
        })
    if as_json:
        out.print(json.dumps(rows, indent=2))
        return
    if not rows:
        err.print(f"No components in {ws.services_dir}. Create one with 'vvkit new APP/COMPONENT'.")
        return
    table = Table("app", "component", "blueprint", "class", "path")
    for row in rows:
        table.add_row(row["app"], row["component"], row["blueprint"], row["class"], row["path"])
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("list")(list_components)
