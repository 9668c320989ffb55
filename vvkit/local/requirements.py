"""Check that the packages in the components' ``requirements.txt`` are installed.

``vvkit up --local`` runs every component with the Python that runs vvkit,
and it installs nothing into it. So before it starts anything, it reads each
component's ``requirements.txt`` and fails when a package listed there is
missing or has a version outside the one required, with the ``pip`` command
that installs them.
"""

from __future__ import annotations

import os
import shlex
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from vvkit.console import err
from vvkit.errors import VvkitError
from vvkit.workspace import Component

REQUIREMENTS_FILE = "requirements.txt"


class MissingRequirements(VvkitError):
    """Packages that components list in their requirements.txt are not installed."""


def unmet_requirements(path: Path) -> list[str]:
    """Return the requirements in ``path`` that the current Python does not meet, as written there.

    Blank lines, comments and requirements whose environment marker does
    not apply are skipped. A line that is not a requirement (a pip option
    such as ``-r other.txt``, or a URL) is skipped with a warning, because
    it cannot be checked.
    """
    unmet = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            err.print(f"[yellow]warning:[/] {path}:{number}: cannot check {line!r}, so it is skipped")
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            unmet.append(line)
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(f"{line} (installed: {installed})")
    return unmet


def check_requirements(components: list[Component]) -> None:
    """Raise MissingRequirements naming every unmet requirement of ``components`` and how to install them."""
    problems = []
    commands = []
    for component in components:
        path = component.path / REQUIREMENTS_FILE
        if not path.is_file():
            continue
        unmet = unmet_requirements(path)
        if unmet:
            problems.append(f"{component.app}/{component.name} needs {', '.join(unmet)}")
            commands.append(f"{shlex.quote(sys.executable)} -m pip install -r {shlex.quote(_shown(path))}")
    if problems:
        raise MissingRequirements(
            "packages from requirements.txt are not installed in the Python that runs the local stack: "
            + "; ".join(problems) + ". Install them with:\n  " + "\n  ".join(commands)
        )


def _shown(path: Path) -> str:
    """Return ``path`` relative to the current folder when it lies below it, else absolute."""
    relative = os.path.relpath(path, Path.cwd())
    return path.as_posix() if relative.startswith("..") else relative
