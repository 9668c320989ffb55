"""``vvkit new APP/COMPONENT``: render a component from a blueprint."""

from __future__ import annotations

import keyword
import sys
from typing import Annotated

import typer

from vvkit import scaffold
from vvkit.console import err
from vvkit.errors import AlreadyExists, InvalidName, VvkitError
from vvkit.names import compose_name, parse_component_path
from vvkit.options import WorkspaceOption, open_workspace
from vvkit.workspace import Workspace


# Answers that vvkit derives itself and that --data may not override.
DERIVED_ANSWERS = ("app", "component", "blueprint")


def parse_data(pairs: list[str]) -> dict[str, str]:
    """Turn ``KEY=VALUE`` strings into a dict; raise for a pair without ``=``."""
    data = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise VvkitError(f"invalid --data {pair!r}: write it as KEY=VALUE, for example --data description='Sells coffee'")
        data[key] = value
    return data


def check_data(data: dict[str, str], questions: list[str] | None) -> None:
    """Reject answers that vvkit sets itself, unknown questions and an invalid class name."""
    for key in data:
        if key in DERIVED_ANSWERS:
            raise VvkitError(f"invalid --data {key}=...: vvkit sets {key!r} itself from APP/COMPONENT and --blueprint")
        if questions is not None and key not in questions:
            known = ", ".join(q for q in questions if q not in DERIVED_ANSWERS)
            raise VvkitError(f"unknown --data key {key!r}: the blueprint asks for {known}")
    name = data.get("class_name")
    if name is not None and (not name.isidentifier() or keyword.iskeyword(name)):
        raise VvkitError(f"invalid --data class_name={name!r}: use a Python class name such as CoffeeMachine")


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
    check_data(answers, scaffold.blueprint_questions(blueprint))
    if interactive and not sys.stdin.isatty():
        raise VvkitError("--interactive needs a terminal on stdin; pass answers with --data KEY=VALUE instead")
    ws = open_workspace(workspace)
    _check_free(ws, app_name, component)

    target = ws.component_dir(app_name, component)
    answers.update(app=app_name, component=component)
    scaffold.render(blueprint, target, answers, interactive)

    err.print(f"\nCreated {app_name}/{component} in {target.relative_to(ws.root)}.")
    err.print("Next: edit service.py, then run 'vvkit sync' to add it to docker-compose.yml.")


def register(app: typer.Typer) -> None:
    app.command("new")(new)
