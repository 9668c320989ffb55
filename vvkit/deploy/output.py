"""Compare generated files with the ones on disk, and write them safely.

``write_files`` writes only the files whose content changed, each through a
temporary file in the same folder and an atomic rename, so a crash or an
error never leaves a half-written file. Callers render every file before
calling it, so a rendering error writes nothing at all.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vvkit import console


@dataclass(frozen=True)
class FileChange:
    """The action ``sync`` takes on one file: ``create``, ``update``, ``identical`` or ``delete``."""

    path: Path
    action: str
    content: str | None


def plan_changes(files: dict[Path, str], stale: list[Path] = ()) -> list[FileChange]:
    """Compare the rendered ``files`` with the disk; ``stale`` files are to be deleted."""
    changes = []
    for path, content in sorted(files.items()):
        current = _read(path)
        if current is None:
            action = "create"
        elif current == content:
            action = "identical"
        else:
            action = "update"
        changes.append(FileChange(path, action, content))
    changes.extend(FileChange(path, "delete", None) for path in sorted(stale))
    return changes


def write_files(changes: list[FileChange], root: Path) -> None:
    """Apply the changes and print one status line per file."""
    for change in changes:
        if change.action in ("create", "update"):
            atomic_write(change.path, change.content)
        elif change.action == "delete":
            change.path.unlink()
        console.status(change.action, change.path, root)


def unified_diff(changes: list[FileChange], root: Path) -> str:
    """Return the diff from the files on disk to the generated ones, empty when nothing differs."""
    chunks = []
    for change in changes:
        if change.action == "identical":
            continue
        shown = _relative(change.path, root)
        before = (_read(change.path) or "").splitlines(keepends=True)
        after = (change.content or "").splitlines(keepends=True)
        old_name = "/dev/null" if change.action == "create" else f"a/{shown}"
        new_name = "/dev/null" if change.action == "delete" else f"b/{shown}"
        chunks.extend(difflib.unified_diff(before, after, old_name, new_name))
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in chunks)


def atomic_write(path: Path, content: str) -> None:
    """Write ``content`` to a temporary file beside ``path`` and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        else:
            os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
