"""``vvkit update [APP/COMPONENT]...``: merge blueprint changes into components."""

from __future__ import annotations

from typing import Annotated

import typer

from vvkit import scaffold
from vvkit.console import err
from vvkit.errors import VvkitError
from vvkit.names import parse_component_path
from vvkit.options import WorkspaceOption, open_workspace


def update(
    paths: Annotated[
        list[str] | None,
        typer.Argument(metavar="APP/COMPONENT", help="Components to update. Default: every component.", show_default=False),
    ] = None,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="Ask the blueprint's new questions instead of taking their defaults.")
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Apply blueprint changes to components through Copier's update, keeping your edits.

    The workspace must be a git repository without uncommitted changes.
    Where your edit and the blueprint change touch the same lines, the file
    gets conflict markers to resolve by hand.
    """
    ws = open_workspace(workspace)
    if paths:
        targets = [ws.component_dir(*parse_component_path(path)) for path in paths]
    else:
        targets = [component.path for component in ws.components()]
    for target in targets:
        if not target.is_dir():
            raise VvkitError(f"component folder {target} not found: check the name with 'vvkit list'")

    for target in targets:
        err.print(f"[bold]updating {target.relative_to(ws.root)}[/]")
        scaffold.update(target, interactive)


def register(app: typer.Typer) -> None:
    app.command("update")(update)
