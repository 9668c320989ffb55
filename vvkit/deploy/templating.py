"""The Jinja2 environment shared by the renderers.

Templates live in ``vvkit/deploy/templates/``. A workspace may replace a
top-level template with its own file of the same name plus ``.j2`` at the
workspace root (``docker-compose.yml.j2``). Undefined names raise, so a typo in
a template fails the sync instead of writing an empty value.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from vvkit.deploy.errors import DeployError
from vvkit.deploy.quoting import literal_for_compose, literal_for_kubernetes, yaml_quote

TEMPLATES_DIR = Path(__file__).parent / "templates"


def make_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    environment.filters["yaml"] = yaml_quote
    environment.filters["compose"] = literal_for_compose
    environment.filters["k8s_literal"] = literal_for_kubernetes
    return environment


def load_template(environment: jinja2.Environment, name: str, override: Path | None = None) -> jinja2.Template:
    """Return the workspace's ``override`` template when it exists, else the built-in ``name``."""
    if override is None or not override.is_file():
        return environment.get_template(name)
    try:
        return environment.from_string(override.read_text(encoding="utf-8"))
    except jinja2.TemplateSyntaxError as exc:
        raise DeployError(f"invalid {override}:{exc.lineno}: {exc.message}; fix the Jinja2 syntax") from exc


def render(template: jinja2.Template, origin: str, **context) -> str:
    """Render a template, turning template errors into a ``DeployError`` that names ``origin``."""
    try:
        return template.render(**context)
    except jinja2.TemplateError as exc:
        raise DeployError(f"rendering {origin} failed: {exc}; fix the template") from exc
