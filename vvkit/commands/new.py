"""``vvkit new APP/COMPONENT``: render a component from a blueprint."""

from __future__ import annotations

from typing import Annotated

import typer

from vvkit import scaffold
from vvkit.console import err
from vvkit.errors import AlreadyExists, InvalidName, VvkitError
from vvkit.names import compose_name, parse_component_path
from vvkit.options import WorkspaceOption, open_workspace
from vvkit.workspace import Workspace


def parse_data(pairs: list[str]) -> dict[str, str]:
    """Turn ``KEY=VALUE`` strings into a dict; raise for a pair without ``=``."""
    data = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise VvkitError(f"invalid --data {pair!r}: write it as KEY=VALUE, for example --data description='Sells coffee'")
        data[key] = value
    return data


def _check_free(workspace: Workspace, app: str, component: str) -> None:
    target = workspace.component_dir(app, component)
    if target.exists():
        raise AlreadyExists(f"{target} already exists: nothing was changed; use 'vvkit update {app}/{component}' to apply blueprint changes")
    wanted = compose_name(app, component)
    for existing in workspace.components():
        if compose_name(existing.app, existing.name) == wanted:
            raise InvalidName(
                f"invalid component {app}/{component}: its compose service name {wanted!r} is already used by "
                f"{existing.app}/{existing.name}; choose another name"
            )


def new(
    path: Annotated[str, typer.Argument(metavar="APP/COMPONENT", help="App and component names, e.g. shop/coffee-machine.")],
    blueprint: Annotated[
        str, typer.Option("--blueprint", "-b", help="Blueprint to render: service, api, or a folder or git URL of your own.")
    ] = "service",
    data: Annotated[
        list[str] | None,
        typer.Option("--data", "-d", metavar="KEY=VALUE", help="Answer to a blueprint question; repeatable."),
    ] = None,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="Ask the blueprint's questions instead of taking their defaults.")
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Create services/APP/COMPONENT/ from a blueprint."""
    app_name, component = parse_component_path(path)
    answers = parse_data(data or [])
    ws = open_workspace(workspace)
    _check_free(ws, app_name, component)

    target = ws.component_dir(app_name, component)
    answers.update(app=app_name, component=component)
    scaffold.render(blueprint, target, answers, interactive)

    err.print(f"\nCreated {app_name}/{component} in {target.relative_to(ws.root)}.")
    err.print("Next: edit service.py, then run 'vvkit sync' to add it to docker-compose.yml.")


def register(app: typer.Typer) -> None:
    app.command("new")(new)
