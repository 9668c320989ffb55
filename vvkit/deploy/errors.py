"""Errors of deployment generation.

``DeployError`` is the root; it is a ``VvkitError``, so the CLI prints its
message as one red line. ``InvalidConfig`` carries the file, the key and the
line of a bad setting so that every message points at the place to fix::

    VvkitError
    └── DeployError
        └── InvalidConfig
"""

from __future__ import annotations

from pathlib import Path

from vvkit.errors import VvkitError


class DeployError(VvkitError):
    """The workspace cannot be turned into a deployment; the message names what to fix."""


class InvalidConfig(DeployError):
    """A setting in ``config.yml``, ``.env`` or ``vvkit.toml`` is invalid."""

    def __init__(self, path: Path | str, key: str | None, line: int | None, problem: str) -> None:
        self.path = Path(path)
        self.key = key
        self.line = line
        self.problem = problem
        where = str(path) if line is None else f"{path}:{line}"
        subject = f"key {key!r}: " if key else ""
        super().__init__(f"invalid {where}: {subject}{problem}")
