"""Helpers for the deployment tests: workspaces built inline and readers of the output.

``load_compose`` reads a compose file the way ``docker compose`` hands it to
containers, for machines without Docker. It parses with YAML 1.1 rules
(PyYAML), then applies compose's ``$`` interpolation to every string value.
Variables come from ``environ``, which is empty by default, so
``${X:-default}`` gives the default.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

DEFAULT_TOML = """\
[workspace]
name = "shop"
[registry]
host = "localhost:5000"
tag = "latest"
[redis]
cluster = true
nodes = 6
[api]
port = 8080
"""

SERVICE_SOURCE = "from vv import Service, rpc\n\n\nclass {name}(Service):\n    @rpc()\n    async def ping(self) -> str:\n        return 'pong'\n"


def class_name(component: str) -> str:
    return "".join(part.capitalize() for part in component.split("-"))


def make_workspace(root: Path, components: dict[str, dict[str, str]], toml: str = DEFAULT_TOML) -> Path:
    """Write a workspace: ``components`` maps ``app/component`` to extra files (name → text).

    Every component gets a ``service.py`` with one Service subclass unless
    its files name ``service.py`` themselves.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "vvkit.toml").write_text(toml)
    for path, files in components.items():
        add_component(root, path, files)
    return root


def add_component(root: Path, path: str, files: dict[str, str] | None = None) -> Path:
    folder = root / "services" / path
    folder.mkdir(parents=True, exist_ok=True)
    files = dict(files or {})
    files.setdefault("service.py", SERVICE_SOURCE.format(name=class_name(path.split("/")[1])))
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def run_vvkit(*args: str, cwd: Path, in_process: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``vvkit`` CLI entry point and return its exit code and output.

    By default it runs in this process, which saves the interpreter start-up
    of a subprocess. ``in_process=False`` runs the installed CLI in a
    subprocess with a wide terminal.
    """
    if not in_process:
        environ = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
        environ.pop("VVKIT_WORKSPACE", None)
        return subprocess.run(
            [sys.executable, "-m", "vvkit", *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120
        )

    from vvkit.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    saved_cwd, saved_argv = os.getcwd(), sys.argv
    saved_workspace = os.environ.pop("VVKIT_WORKSPACE", None)
    os.chdir(cwd)
    sys.argv = ["vvkit", *args]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        if saved_workspace is not None:
            os.environ["VVKIT_WORKSPACE"] = saved_workspace
    return subprocess.CompletedProcess(["vvkit", *args], code, stdout.getvalue(), stderr.getvalue())


# --- compose interpolation ----------------------------------------------------

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>" + _NAME + r")|\{(?P<braced>" + _NAME + r")(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<invalid>))"
)


class InterpolationError(ValueError):
    pass


def interpolate(text: str, environ: dict[str, str]) -> str:
    """Apply compose's interpolation to one string, rejecting what compose rejects."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if not (match["named"] or match["braced"]):
            raise InterpolationError(f"invalid interpolation format in {text!r} at {match.start()}")
        name = match["named"] or match["braced"]
        op, argument = match["op"], match["arg"]
        value = environ.get(name)
        if op is None:
            return value or ""
        unset_or_empty = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return interpolate(argument, environ) if unset_or_empty else value
        if op.endswith("?"):
            if unset_or_empty:
                raise InterpolationError(f"required variable {name} is missing: {argument}")
            return value
        return "" if unset_or_empty else interpolate(argument, environ)

    return _TOKEN.sub(replace, text)


def _interpolate_tree(node, environ: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, list):
        return [_interpolate_tree(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, environ) for key, value in node.items()}
    return node


def load_compose(text: str, environ: dict[str, str] | None = None) -> dict:
    """Parse with YAML 1.1 rules and interpolate, like compose before it starts containers."""
    return _interpolate_tree(yaml.safe_load(text), environ or {})


# --- validation ---------------------------------------------------------------


@functools.cache
def compose_schema_validator() -> jsonschema.Validator:
    """The compose-spec JSON schema that check-jsonschema ships as ``vendor.compose-spec``."""
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def schema_errors(document: dict) -> list[str]:
    return [f"{list(error.absolute_path)}: {error.message}" for error in compose_schema_validator().iter_errors(document)]


def docker_compose_available() -> bool:
    try:
        result = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


# --- Kubernetes ---------------------------------------------------------------


def expand_kubernetes(text: str, variables: dict[str, str]) -> str:
    """Apply Kubernetes' ``$(NAME)`` expansion of env values and commands.

    The kubelet turns ``$$`` into ``$``. It replaces ``$(NAME)`` with the
    variable when that is defined and keeps it as written otherwise. Any
    other ``$`` stays.
    """
    output = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$" or index + 1 == len(text):
            output.append(char)
            index += 1
            continue
        following = text[index + 1]
        if following == "$":
            output.append("$")
            index += 2
        elif following == "(" and ")" in text[index + 2 :]:
            end = text.index(")", index + 2)
            name = text[index + 2 : end]
            output.append(variables.get(name, text[index : end + 1]))
            index = end + 1
        else:
            output.append("$" + following)
            index += 2
    return "".join(output)


def load_manifests(folder: Path) -> dict[str, list[dict]]:
    """Read every YAML file of a generated base: relative path → its documents."""
    return {
        path.relative_to(folder).as_posix(): [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
        for path in sorted(folder.rglob("*.yaml"))
    }


def container_environment(deployment: dict, config_maps: dict[str, dict], secrets: dict[str, dict]) -> dict[str, str]:
    """Resolve what the first container of a Deployment gets as its environment."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    resolved: dict[str, str] = {}
    for reference in container.get("envFrom", []):
        resolved.update(config_maps[reference["configMapRef"]["name"]])
    for entry in container.get("env", []):
        source = entry.get("valueFrom")
        if source is None:
            resolved[entry["name"]] = expand_kubernetes(entry.get("value", ""), resolved)
        elif "configMapKeyRef" in source:
            reference = source["configMapKeyRef"]
            resolved[entry["name"]] = config_maps[reference["name"]][reference["key"]]
        else:
            reference = source["secretKeyRef"]
            resolved[entry["name"]] = secrets[reference["name"]][reference["key"]]
    return resolved
