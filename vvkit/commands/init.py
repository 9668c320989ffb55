"""``vvkit init DIR``: create a workspace."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from vvkit.console import err, status
from vvkit.errors import AlreadyExists, VvkitError
from vvkit.workspace import CONFIG_FILE, SERVICES_DIR

VVKIT_TOML = """\
# Settings of the {name} workspace, read by every vvkit command.

[workspace]
name = "{name}"

[registry]
# Registry that `vvkit sync` names in image references: <host>/<app>-<component>:<tag>.
host = "localhost:5000"
tag = "latest"

[redis]
# true: a Redis Cluster of `nodes` nodes (three masters with one replica each
# for 6); false: a single Redis server.
cluster = true
nodes = 6

[api]
# Host port of the HTTP gateway (the `api` component).
port = 8080
"""

GITIGNORE = """\
# Local state of `vvkit up`: server data, logs, process ids.
.vvkit/
# Component secrets and machine-specific variables.
.env
__pycache__/
*.pyc
"""


def workspace_name(folder: Path) -> str:
    """Return the folder name made into a DNS label, the workspace's default name."""
    label = re.sub(r"[^a-z0-9-]+", "-", folder.name.lower()).strip("-")
    return label if label[:1].isalpha() else f"ws-{label}".rstrip("-")


def _check_not_in_services(root: Path) -> None:
    # A workspace inside another one's services/ would be scanned as an app
    # of the outer workspace and break its sync.
    for parent in root.parents:
        if (parent / CONFIG_FILE).is_file() and root.is_relative_to(parent / SERVICES_DIR):
            raise VvkitError(
                f"{root} is inside the services/ folder of the workspace {parent}; create the workspace elsewhere"
            )


def _git_init(root: Path) -> None:
    # Copier's update needs the workspace under git; do not nest a
    # repository inside an existing one.
    if shutil.which("git") is None:
        return
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root, capture_output=True, text=True)
    if inside.returncode == 0:
        return
    subprocess.run(["git", "init", "--quiet"], cwd=root, check=True)
    status("create", root / ".git", root.parent)


def init(
    directory: Annotated[Path, typer.Argument(help="Folder of the new workspace; created if missing.", show_default=False)],
) -> None:
    """Create a workspace: vvkit.toml, services/ and .gitignore, under git."""
    root = directory.resolve()
    name = workspace_name(root)
    config = root / CONFIG_FILE
    if config.exists():
        raise AlreadyExists(f"{config} already exists: {root} is a workspace already; nothing was changed")
    _check_not_in_services(root)

    root.mkdir(parents=True, exist_ok=True)
    (root / SERVICES_DIR).mkdir(exist_ok=True)
    status("create", root / SERVICES_DIR, root.parent)
    config.write_text(VVKIT_TOML.format(name=name))
    status("create", config, root.parent)
    gitignore = root / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(GITIGNORE)
        status("create", gitignore, root.parent)
    _git_init(root)

    if name != root.name:
        err.print(f"workspace name {name!r}, made from the folder name {root.name!r} (edit it in {CONFIG_FILE})")
    change_dir = "" if root == Path.cwd().resolve() else f"cd {shlex.quote(str(directory))} && "
    err.print(f"\nWorkspace {name} is ready. Next: {change_dir}vvkit new {name}/hello")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
