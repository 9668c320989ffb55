"""Render components from Copier blueprints.

``vvkit new`` copies a blueprint into ``services/<app>/<component>/`` and
``vvkit update`` merges later blueprint changes into it. Copier's update
needs the blueprint's history: it renders the version a component was made
from, diffs that against the component, and replays the diff on the new
version. The built-in blueprints ship as plain folders inside the package, so
vvkit keeps a git repository per built-in blueprint in the user's cache
(``$XDG_CACHE_HOME/vvkit/blueprints/<name>``) and commits the shipped folder
there, tagged ``<vvkit version>`` and then ``<vvkit version>.postN`` whenever
its content changes. A blueprint given as a path or URL is used as it is; it
must be a git repository with version tags for ``vvkit update`` to work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from importlib import metadata, resources
from pathlib import Path

import yaml

from vvkit.errors import VvkitError

BUILTIN_BLUEPRINTS = ("service", "api")
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "vvkit",
    "GIT_AUTHOR_EMAIL": "vvkit@localhost",
    "GIT_COMMITTER_NAME": "vvkit",
    "GIT_COMMITTER_EMAIL": "vvkit@localhost",
}


class BlueprintError(VvkitError):
    """A blueprint could not be found, rendered or merged."""


def builtin_blueprint_dir(name: str) -> Path:
    """Return the folder of a built-in blueprint, in the installed package or the checkout."""
    packaged = resources.files("vvkit") / "blueprints" / name
    if packaged.is_dir():
        return Path(str(packaged))
    # An editable install keeps the blueprints at the repository root.
    checkout = Path(__file__).resolve().parents[1] / "blueprints" / name
    if checkout.is_dir():
        return checkout
    raise BlueprintError(f"built-in blueprint {name!r} is missing from the vvkit installation; reinstall vvkit")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vvkit" / "blueprints"


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env={**os.environ, **_GIT_IDENTITY}
    )
    if result.returncode != 0:
        raise BlueprintError(f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()}")
    return result.stdout.strip()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two vvkit commands may refresh the same cached repository at once.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _next_tag(repo: Path, version: str) -> str:
    tags = set(_git(repo, "tag", "--list").split())
    if version not in tags:
        return version
    number = 1
    while f"{version}.post{number}" in tags:
        number += 1
    return f"{version}.post{number}"


def _sync_tree(source: Path, repo: Path) -> None:
    for entry in repo.iterdir():
        if entry.name == ".git":
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(source, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


def cached_builtin(name: str) -> Path:
    """Return the git repository holding built-in blueprint ``name``, committing any change first."""
    if shutil.which("git") is None:
        raise BlueprintError("git not found: vvkit new and update need git; install it (for example 'apt-get install git')")
    repo = _cache_root() / name
    with _locked(_cache_root() / f".{name}.lock"):
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True, exist_ok=True)
            _git(repo, "init", "--quiet", "--initial-branch=main")
        _sync_tree(builtin_blueprint_dir(name), repo)
        _git(repo, "add", "--all")
        if _git(repo, "status", "--porcelain"):
            _git(repo, "commit", "--quiet", "-m", f"Blueprint {name} as shipped")
            _git(repo, "tag", _next_tag(repo, metadata.version("vvkit")))
    return repo


def blueprint_source(blueprint: str) -> tuple[str, str]:
    """Return the Copier source for ``blueprint`` and the name recorded in the answers."""
    if blueprint in BUILTIN_BLUEPRINTS:
        return str(cached_builtin(blueprint)), blueprint
    path = Path(blueprint).expanduser()
    if path.is_dir():
        return str(path.resolve()), path.name
    if "://" in blueprint or blueprint.startswith("git@"):
        return blueprint, blueprint
    if "/" in blueprint or blueprint.startswith("."):
        raise BlueprintError(f"blueprint folder {blueprint!r} not found: check the path, or use one of {', '.join(BUILTIN_BLUEPRINTS)}")
    raise BlueprintError(
        f"unknown blueprint {blueprint!r}: use one of {', '.join(BUILTIN_BLUEPRINTS)}, a folder or a git URL"
    )


def blueprint_questions(blueprint: str) -> list[str] | None:
    """Return the question names of a local blueprint's copier.yml, or None for a remote one."""
    if blueprint in BUILTIN_BLUEPRINTS:
        folder = builtin_blueprint_dir(blueprint)
    else:
        folder = Path(blueprint).expanduser()
    config = next((folder / name for name in ("copier.yml", "copier.yaml") if (folder / name).is_file()), None)
    if config is None:
        return None
    questions = yaml.safe_load(config.read_text()) or {}
    return [key for key in questions if not key.startswith("_")]


def render(blueprint: str, destination: Path, data: dict[str, str], interactive: bool) -> None:
    """Copy ``blueprint`` into ``destination``, which must not exist yet."""
    import copier  # imported here: it costs a quarter second at every CLI start
    from copier.errors import CopierError

    source, recorded = blueprint_source(blueprint)
    answers = {"blueprint": recorded, **data}
    try:
        copier.run_copy(
            source, destination, data=answers, defaults=not interactive, overwrite=False,
            unsafe=False, vcs_ref="HEAD", quiet=False,
        )
    except CopierError as exc:
        raise BlueprintError(f"rendering blueprint {blueprint!r} into {destination} failed: {exc}") from exc


def update(destination: Path, interactive: bool) -> None:
    """Merge the newest version of the component's blueprint into ``destination``."""
    import copier
    from copier.errors import CopierError

    answers = destination / ".copier-answers.yml"
    if not answers.exists():
        raise BlueprintError(f"{answers} is missing: {destination} was not made by vvkit new, so it cannot be updated")
    recorded = _recorded_blueprint(answers)
    if recorded in BUILTIN_BLUEPRINTS:
        cached_builtin(recorded)
    try:
        copier.run_update(
            destination, defaults=not interactive, overwrite=True, conflict="inline",
            skip_answered=True, unsafe=False, vcs_ref="HEAD", quiet=False,
        )
    except CopierError as exc:
        raise BlueprintError(f"updating {destination} failed: {exc}") from exc


def _recorded_blueprint(answers: Path) -> str:
    for line in answers.read_text().splitlines():
        if line.startswith("blueprint:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return ""
