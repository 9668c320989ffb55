"""The workspace: the folder holding ``vvkit.toml`` and ``services/<app>/<component>/``.

``Workspace`` is the one model of a workspace that every command reads:
scaffolding, listing, deployment generation and the local runner. It finds
the root, reads ``vvkit.toml`` and lists the component folders.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from vvkit.errors import VvkitError, WorkspaceNotFound

CONFIG_FILE = "vvkit.toml"
SERVICES_DIR = "services"
STATE_DIR = ".vvkit"
COPIER_ANSWERS_FILE = ".copier-answers.yml"


@dataclass(frozen=True)
class Component:
    """One component folder, ``services/<app>/<component>/``."""

    app: str
    name: str
    path: Path

    @property
    def service_id(self) -> str:
        return f"{self.app}.{self.name}"

    @property
    def blueprint(self) -> str:
        """The blueprint recorded in the Copier answers, or ``?`` when there are none."""
        answers = self.path / COPIER_ANSWERS_FILE
        if not answers.exists():
            return "?"
        for line in answers.read_text().splitlines():
            if line.startswith("blueprint:"):
                return line.split(":", 1)[1].strip().strip("'\"")
        return "?"


@dataclass
class Workspace:
    """A vvkit workspace rooted at ``root``.

    ``vvkit.toml`` is parsed on first use of ``settings``, so that commands
    which only need the root (``down``, ``ps``, ``logs``) still work while
    the file has a syntax error.
    """

    root: Path
    _settings: dict | None = field(default=None, repr=False)

    @classmethod
    def load(cls, root: Path) -> Workspace:
        """Return the workspace rooted at ``root``; raise if it has no ``vvkit.toml``."""
        if not root.is_dir():
            raise WorkspaceNotFound(f"workspace folder {root} does not exist: check --workspace, or create one with 'vvkit init DIR'")
        if not (root / CONFIG_FILE).is_file():
            raise WorkspaceNotFound(
                f"{root} is not a vvkit workspace: {CONFIG_FILE} is missing; create one with 'vvkit init DIR'"
            )
        return cls(root=root.resolve())

    @classmethod
    def find(cls, start: Path | None = None) -> Workspace:
        """Load the workspace holding ``start`` (default: the current folder) or one of its parents."""
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / CONFIG_FILE).is_file():
                return cls.load(folder)
        raise WorkspaceNotFound(
            f"no {CONFIG_FILE} in {here} or any folder above it: run inside a workspace, "
            "pass --workspace DIR, or create one with 'vvkit init DIR'"
        )

    @property
    def settings(self) -> dict:
        """The parsed ``vvkit.toml``; raise ``VvkitError`` naming the line of a syntax error."""
        if self._settings is None:
            config = self.root / CONFIG_FILE
            try:
                self._settings = tomllib.loads(config.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise VvkitError(f"invalid {config}: {exc}; fix the TOML syntax") from exc
        return self._settings

    @property
    def services_dir(self) -> Path:
        return self.root / SERVICES_DIR

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def component_dir(self, app: str, component: str) -> Path:
        return self.services_dir / app / component

    def components(self) -> list[Component]:
        """Return every component folder, sorted by app and component name."""
        if not self.services_dir.is_dir():
            return []
        found = []
        for app_dir in sorted(self.services_dir.iterdir()):
            if not app_dir.is_dir() or app_dir.name.startswith((".", "_")):
                continue
            for component_dir in sorted(app_dir.iterdir()):
                if component_dir.is_dir() and not component_dir.name.startswith((".", "_")):
                    found.append(Component(app=app_dir.name, name=component_dir.name, path=component_dir))
        return found
