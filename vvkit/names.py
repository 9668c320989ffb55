"""Rules for app and component names, and the names derived from them."""

from __future__ import annotations

import keyword
import re

from vvkit.errors import InvalidName

MAX_LABEL_LENGTH = 63
_LABEL = re.compile(r"[a-z][a-z0-9-]*")
NAME_RULE = "use lowercase letters, digits and '-', starting with a letter, at most 63 characters"

# Compose service names that the generated deployment adds for itself; a
# component whose compose name equals one of these would replace it.
RESERVED_SERVICE_NAMES = frozenset({"registry", "redis", "redis-cluster-create"})
_RESERVED_PATTERNS = (re.compile(r"redis-node-\d+"), re.compile(r"pg-.+"))


def check_label(name: str, what: str) -> str:
    """Return ``name`` if it is a DNS label, else raise ``InvalidName`` naming it and the rule."""
    if not name:
        raise InvalidName(f"missing {what} name: {NAME_RULE}")
    if len(name) > MAX_LABEL_LENGTH:
        raise InvalidName(f"invalid {what} name {name!r}: it has {len(name)} characters; {NAME_RULE}")
    if not name.isascii() or not _LABEL.fullmatch(name) or name.endswith("-"):
        raise InvalidName(f"invalid {what} name {name!r}: {NAME_RULE}, not ending with '-'")
    return name


def class_name(component: str) -> str:
    """Return the class name of a component: ``coffee-machine`` → ``CoffeeMachine``."""
    return "".join(part.capitalize() for part in component.split("-") if part)


def compose_name(app: str, component: str) -> str:
    """Return the compose service name of a component: ``<app>-<component>``."""
    return f"{app}-{component}"


def parse_component_path(path: str) -> tuple[str, str]:
    """Split ``APP/COMPONENT`` and check both names; raise ``InvalidName`` otherwise."""
    parts = path.split("/")
    if len(parts) != 2:
        raise InvalidName(f"invalid component path {path!r}: write it as APP/COMPONENT, for example shop/coffee-machine")
    app = check_label(parts[0], "app")
    component = check_label(parts[1], "component")
    if keyword.iskeyword(component) or keyword.iskeyword(class_name(component)):
        raise InvalidName(
            f"invalid component name {component!r}: it or its class name {class_name(component)!r} "
            "is a Python keyword; choose another name"
        )
    _check_not_reserved(app, component)
    return app, component


def _check_not_reserved(app: str, component: str) -> None:
    # The component name alone is checked too, so that names such as
    # redis-node-0 never look like infrastructure in `vvkit ps` or logs.
    for name in (component, compose_name(app, component)):
        if name in RESERVED_SERVICE_NAMES or any(p.fullmatch(name) for p in _RESERVED_PATTERNS):
            raise InvalidName(
                f"invalid component name {component!r}: {name!r} is a service name of the generated deployment; "
                "choose another name"
            )
