"""``vvkit list``: the components of the workspace."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from vvkit.console import err, out
from vvkit.options import JsonOption, WorkspaceOption, open_workspace


def list_components(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Show every app and component with its blueprint and class."""
    ws = open_workspace(workspace)
    rows = [
        {"app": c.app, "component": c.name, "blueprint": c.blueprint, "class": c.class_name,
         "path": str(c.path.relative_to(ws.root))}
        for c in ws.components()
    ]
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
