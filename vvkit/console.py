"""Terminal output shared by all commands.

Human-readable output goes to stderr through ``err``; stdout is kept for
machine output such as ``--json`` so that it can be piped.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_STATUS_STYLES = {
    "create": "green",
    "update": "yellow",
    "identical": "cyan",
    "conflict": "red",
    "skip": "dim",
    "delete": "red",
}


def status(action: str, path: Path | str, root: Path | None = None) -> None:
    """Print one status line for a written or checked file: ``   create  services/a/b/x.py``."""
    shown = Path(path)
    if root is not None:
        try:
            shown = shown.relative_to(root)
        except ValueError:
            pass
    style = _STATUS_STYLES.get(action, "")
    err.print(f"[{style}]{action:>10}[/]  {escape(str(shown))}")


def fail(message: str) -> None:
    """Print an error as one red line on stderr."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
