"""Read the deployment settings of one component folder.

Two files, both optional:

``config.yml``
    A YAML mapping with the keys in ``CONFIG_KEYS``; any other key is
    rejected. Values are read from the YAML node tree, not through YAML's
    implicit typing, so an ``env`` value reaches the container exactly as
    written: ``yes``, ``0123``, ``12:30`` and ``1e3`` stay those strings. A
    null (``~``, ``null`` or nothing after the colon) is rejected; write
    ``""`` for an empty string.

``.env``
    One ``NAME=VALUE`` per line; blank lines and lines starting with ``#`` are
    skipped and an ``export`` prefix is allowed. An unquoted value runs to the
    end of the line, minus surrounding whitespace and a comment that starts
    with whitespace and ``#``. A value in single quotes is taken as is; one in
    double quotes understands ``\\\\``, ``\\"``, ``\\n``, ``\\r`` and ``\\t``.
    Nothing is interpolated: ``$HOME`` stays ``$HOME``. A line without ``=``
    is rejected.

Every error names the file, the key and the line.

With named ``instances``, the instance at position N (from 0, in name order)
publishes each host port of ``ports`` plus N, so that instances never claim
one host port twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vvkit.deploy.errors import InvalidConfig
from vvkit.errors import InvalidName
from vvkit.names import check_label

CONFIG_FILE = "config.yml"
DOTENV_FILE = ".env"
CONFIG_KEYS = ("blueprint", "depends_on", "env", "instances", "ports", "replicas", "resources")
RESOURCE_KINDS = ("limits", "requests")
RESOURCE_NAMES = ("cpu", "memory")

# Kubernetes sets no requests or limits by default. These fit one small
# service and let the scheduler place it; config.yml overrides them.
DEFAULT_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}

# POSIX shells accept these names; Kubernetes and compose accept more, but a
# name outside this set cannot be read back with ${NAME} inside a container.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PORT_SPEC = re.compile(r"(?:(?P<host>[0-9]+):)?(?P<container>[0-9]+)(?:/(?P<protocol>tcp|udp))?")
QUANTITY = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
DIGITS = re.compile(r"[0-9]+")
MAX_PORT = 65535

_NULL_TAG = "tag:yaml.org,2002:null"


@dataclass(frozen=True)
class PortMapping:
    """A port to publish: ``host`` on the machine, ``container`` inside; ``origin`` is ``file:line``."""

    host: int
    container: int
    protocol: str
    origin: str

    @property
    def spec(self) -> str:
        suffix = "" if self.protocol == "tcp" else f"/{self.protocol}"
        return f"{self.host}:{self.container}{suffix}"


@dataclass(frozen=True)
class Dependency:
    """A ``depends_on`` entry: ``app`` is None for a component of the same app."""

    app: str | None
    component: str
    origin: str


@dataclass(frozen=True)
class ComponentConfig:
    """The settings of one component from its ``config.yml`` and ``.env``."""

    instances: tuple[str, ...] = ()
    replicas: int = 1
    env: dict[str, str] = field(default_factory=dict)
    dotenv: dict[str, str] = field(default_factory=dict)
    ports: tuple[PortMapping, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    blueprint: str | None = None
    resources: dict[str, dict[str, str]] = field(default_factory=lambda: _copy_resources(DEFAULT_RESOURCES))


def read_component_config(folder: Path) -> ComponentConfig:
    """Read ``config.yml`` and ``.env`` of a component folder; raise ``InvalidConfig`` on any bad value."""
    settings: dict = {"dotenv": read_dotenv(folder / DOTENV_FILE)}
    config_path = folder / CONFIG_FILE
    if config_path.is_file():
        settings.update(_read_config_yml(config_path))
    return ComponentConfig(**settings)


def _copy_resources(resources: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {kind: dict(values) for kind, values in resources.items()}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidConfig(path, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc


# --- config.yml ---------------------------------------------------------------


def _read_config_yml(path: Path) -> dict:
    try:
        root = yaml.compose(_read_text(path), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise InvalidConfig(path, None, line, f"{exc.problem or exc.context}; fix the YAML syntax") from exc
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise InvalidConfig(path, None, _line(root), "the file must be a mapping of settings such as 'replicas: 2'")

    settings = {}
    for key, node in _mapping_items(path, root, None):
        if key not in CONFIG_KEYS:
            raise InvalidConfig(path, key, _line(node), f"unknown key; use one of: {', '.join(CONFIG_KEYS)}")
        settings[key] = _READERS[key](path, key, node)
    return settings


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping_items(path: Path, node: yaml.Node, key: str | None) -> Iterator[tuple[str, yaml.Node]]:
    """Yield the (key text, value node) pairs of a mapping node, rejecting duplicate and non-text keys."""
    if not isinstance(node, yaml.MappingNode):
        raise InvalidConfig(path, key, _line(node), "expected a mapping of NAME: VALUE")
    seen = set()
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise InvalidConfig(path, key, _line(key_node), "a key must be plain text")
        name = key_node.value
        if name in seen:
            raise InvalidConfig(path, name, _line(key_node), "the key appears twice; keep one")
        seen.add(name)
        yield name, value_node


def _text(path: Path, key: str, node: yaml.Node) -> str:
    """Return a scalar exactly as written in the file; reject nulls, lists and mappings."""
    if not isinstance(node, yaml.ScalarNode):
        raise InvalidConfig(path, key, _line(node), "expected a single value, not a list or mapping")
    if node.tag == _NULL_TAG:
        raise InvalidConfig(path, key, _line(node), 'the value is null; write "" for an empty string')
    return node.value


def _sequence(path: Path, key: str, node: yaml.Node) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        raise InvalidConfig(path, key, _line(node), "expected a list, one item per line starting with '- '")
    return node.value


def _read_instances(path: Path, key: str, node: yaml.Node) -> tuple[str, ...]:
    names = []
    for item in _sequence(path, key, node):
        name = _text(path, key, item)
        try:
            check_label(name, "instance")
        except InvalidName as exc:
            raise InvalidConfig(path, key, _line(item), str(exc)) from None
        if name in names:
            raise InvalidConfig(path, key, _line(item), f"instance {name!r} is listed twice; keep one")
        names.append(name)
    return tuple(sorted(names))


def _read_replicas(path: Path, key: str, node: yaml.Node) -> int:
    text = _text(path, key, node)
    if not DIGITS.fullmatch(text) or int(text) < 1:
        raise InvalidConfig(path, key, _line(node), f"invalid value {text!r}: use a whole number of at least 1")
    return int(text)


def _read_env(path: Path, key: str, node: yaml.Node) -> dict[str, str]:
    env = {}
    for name, value_node in _mapping_items(path, node, key):
        _check_env_name(path, name, _line(value_node))
        env[name] = _text(path, name, value_node)
    return env


def _check_env_name(path: Path, name: str, line: int) -> None:
    if not ENV_NAME.fullmatch(name):
        raise InvalidConfig(
            path, name, line, "invalid variable name: use letters, digits and '_', not starting with a digit"
        )


def _read_ports(path: Path, key: str, node: yaml.Node) -> tuple[PortMapping, ...]:
    ports = []
    for item in _sequence(path, key, node):
        text = _text(path, key, item)
        match = PORT_SPEC.fullmatch(text)
        numbers = [int(n) for n in (match and match.group("host", "container")) or () if n]
        if not match or not all(1 <= n <= MAX_PORT for n in numbers):
            raise InvalidConfig(
                path, key, _line(item), f"invalid port {text!r}: write HOST:CONTAINER or PORT, optionally /udp, each 1-65535"
            )
        container = int(match["container"])
        host = int(match["host"]) if match["host"] else container
        ports.append(PortMapping(host, container, match["protocol"] or "tcp", f"{path}:{_line(item)}"))
    return tuple(sorted(ports, key=lambda p: (p.host, p.container, p.protocol)))


def _read_depends_on(path: Path, key: str, node: yaml.Node) -> tuple[Dependency, ...]:
    found = []
    for item in _sequence(path, key, node):
        text = _text(path, key, item)
        app, _, component = text.rpartition("/")
        try:
            if app:
                check_label(app, "app")
            check_label(component, "component")
        except InvalidName as exc:
            raise InvalidConfig(path, key, _line(item), f"{exc}; write COMPONENT or APP/COMPONENT") from None
        found.append(Dependency(app or None, component, f"{path}:{_line(item)}"))
    return tuple(sorted(found, key=lambda d: (d.app or "", d.component)))


def _read_blueprint(path: Path, key: str, node: yaml.Node) -> str:
    return _text(path, key, node)


def _read_resources(path: Path, key: str, node: yaml.Node) -> dict[str, dict[str, str]]:
    resources = _copy_resources(DEFAULT_RESOURCES)
    for kind, kind_node in _mapping_items(path, node, key):
        field_path = f"{key}.{kind}"
        if kind not in RESOURCE_KINDS:
            raise InvalidConfig(path, field_path, _line(kind_node), f"unknown key; use one of: {', '.join(RESOURCE_KINDS)}")
        for name, value_node in _mapping_items(path, kind_node, field_path):
            value_path = f"{field_path}.{name}"
            if name not in RESOURCE_NAMES:
                raise InvalidConfig(path, value_path, _line(value_node), f"unknown key; use one of: {', '.join(RESOURCE_NAMES)}")
            value = _text(path, value_path, value_node)
            if not QUANTITY.fullmatch(value):
                raise InvalidConfig(
                    path, value_path, _line(value_node), f"invalid quantity {value!r}: write for example 250m, 1, 128Mi or 1Gi"
                )
            resources[kind][name] = value
    return resources


_READERS = {
    "blueprint": _read_blueprint,
    "depends_on": _read_depends_on,
    "env": _read_env,
    "instances": _read_instances,
    "ports": _read_ports,
    "replicas": _read_replicas,
    "resources": _read_resources,
}


# --- .env ---------------------------------------------------------------------

_DOUBLE_QUOTE_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
_TRAILING_COMMENT = re.compile(r"[ \t]+#.*\Z")


def read_dotenv(path: Path) -> dict[str, str]:
    """Read a ``.env`` file in the format described in the module docstring; a missing file is empty."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    # Split on \n only: str.splitlines() would also split on U+2028 and other
    # characters that are legal inside a value.
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        stripped = line.removesuffix("\r").strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()

        name, equals, raw_value = stripped.partition("=")
        name = name.strip(" \t")
        if not equals:
            raise InvalidConfig(path, name, number, "missing '=' and value: write NAME=VALUE, or NAME= for an empty value")
        _check_env_name(path, name, number)
        if name in values:
            raise InvalidConfig(path, name, number, "the variable is set twice; keep one line")
        values[name] = _dotenv_value(path, name, number, raw_value.strip(" \t"))
    return values


def _dotenv_value(path: Path, name: str, line: int, raw: str) -> str:
    if not raw or raw[0] not in "'\"":
        return _TRAILING_COMMENT.sub("", raw)

    quote = raw[0]
    end = _closing_quote(raw, quote)
    if end is None:
        raise InvalidConfig(path, name, line, f"missing closing {quote}: a quoted value must end on the same line")
    rest = raw[end + 1 :].strip(" \t")
    if rest and not rest.startswith("#"):
        raise InvalidConfig(path, name, line, f"unexpected text {rest!r} after the closing {quote}; quote the whole value")
    body = raw[1:end]
    return body if quote == "'" else _unescape_double(body)


def _closing_quote(raw: str, quote: str) -> int | None:
    index = 1
    while index < len(raw):
        if quote == '"' and raw[index] == "\\":
            index += 2
            continue
        if raw[index] == quote:
            return index
        index += 1
    return None


def _unescape_double(body: str) -> str:
    # An unknown escape such as \d is kept as written, backslash included.
    return re.sub(r"\\(.)", lambda m: _DOUBLE_QUOTE_ESCAPES.get(m[1], m[0]), body)
