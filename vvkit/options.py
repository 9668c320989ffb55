"""Typer options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vvkit.workspace import Workspace

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace root (the folder holding vvkit.toml). Default: the current folder or the nearest one above it.",
        envvar="VVKIT_WORKSPACE",
        file_okay=False,
        show_default=False,
    ),
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout instead of a table.")]


def open_workspace(path: Path | None) -> Workspace:
    """Load the workspace at ``path``, or find the one holding the current folder."""
    if path is not None:
        return Workspace.load(path)
    return Workspace.find()
