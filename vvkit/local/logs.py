"""Log files of a local stack under ``.vvkit/logs/`` and how to show them.

Each service process appends its output to ``.vvkit/logs/<name>.log``, and
the supervisor adds lines starting with ``vvkit:`` there when it starts,
restarts or stops the process. The servers keep their logs in their data
folders, and the supervisor writes ``supervisor.log``. The files outlive ``vvkit down``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from vvkit.errors import VvkitError
from vvkit.local.state import RunState, logs_dir

SUPERVISOR_LOG = "supervisor.log"
FOLLOW_INTERVAL_S = 0.2
_PREFIX_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta",
                  "bright_green", "bright_yellow", "bright_blue")


@dataclass(frozen=True)
class LogSource:
    """One log file and the name its lines are prefixed with."""

    name: str
    path: Path


def supervisor_log(state_dir: Path) -> Path:
    return logs_dir(state_dir) / SUPERVISOR_LOG


def select_sources(state_dir: Path, state: RunState | None, requested: list[str]) -> list[LogSource]:
    """Return the logs for the ``requested`` names (all services when empty).

    A name matches a process (``shop-echo-2``), a component (``echo`` or
    ``shop/echo``, all its replicas), a server (``redis``, ``postgres``) or
    ``supervisor``.
    """
    records = state.processes if state else []
    if not requested:
        chosen = [LogSource(r.name, Path(r.log)) for r in records if r.kind == "service" and r.log]
        return chosen or _files_on_disk(state_dir)
    sources = []
    for name in requested:
        matches = [LogSource(r.name, Path(r.log)) for r in records if r.log and _matches(r, name)]
        if name == "supervisor":
            matches.append(LogSource("supervisor", supervisor_log(state_dir)))
        if not matches and (logs_dir(state_dir) / f"{name}.log").exists():
            matches.append(LogSource(name, logs_dir(state_dir) / f"{name}.log"))
        if not matches:
            raise VvkitError(f"no log for {name!r}: use one of {', '.join(_known_names(state_dir, records))}")
        sources += [source for source in matches if source not in sources]
    return sources


def _known_names(state_dir: Path, records: list) -> list[str]:
    """Return the names that select_sources accepts for this stack: processes, components and ``supervisor``."""
    names = {record.name for record in records} | {record.component for record in records if record.component}
    if not records:
        names |= {source.name for source in _files_on_disk(state_dir)}
    return sorted(names | {"supervisor"})


def _matches(record, name: str) -> bool:
    if record.name == name:
        return True
    if record.component is None:
        return False
    return name in (record.component, record.component.split("/", 1)[1])


def _files_on_disk(state_dir: Path) -> list[LogSource]:
    folder = logs_dir(state_dir)
    if not folder.is_dir():
        return []
    return [LogSource(path.stem, path) for path in sorted(folder.glob("*.log")) if path.name != SUPERVISOR_LOG]


def last_lines(path: Path, count: int) -> list[str]:
    """Return the last ``count`` lines of ``path`` (none when it is missing)."""
    try:
        with open(path, "rb") as file:
            file.seek(0, 2)
            size = file.tell()
            # Read blocks from the end until enough lines are in hand, so a
            # large log is never read whole.
            block_size, data = 8192, b""
            while size > 0 and data.count(b"\n") <= count:
                step = min(block_size, size)
                size -= step
                file.seek(size)
                data = file.read(step) + data
    except FileNotFoundError:
        return []
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:] if count > 0 else []


def lines_since(path: Path, offset: int, count: int) -> list[str]:
    """Return the last ``count`` lines that were written to ``path`` after byte ``offset``.

    ``offset`` is the file size before a run started, so lines of earlier
    runs are left out. A file that shrank since is read from its start.
    """
    size = _size(path)
    start = 0 if size < offset else offset
    if count <= 0 or size == start:
        return []
    # NOTE: reads everything written since ``offset``; a start-up failure
    # writes little, so this is not bounded like last_lines.
    with open(path, "rb") as file:
        file.seek(start)
        data = file.read(size - start)
    return data.decode(errors="replace").splitlines()[-count:]


class Prefixer:
    """Format log lines as ``name | line`` with one colour per source, aligned."""

    def __init__(self, names: list[str]) -> None:
        self.width = max((len(name) for name in names), default=0)
        self.styles = {name: _PREFIX_STYLES[i % len(_PREFIX_STYLES)] for i, name in enumerate(sorted(names))}

    def format(self, name: str, line: str) -> Text:
        style = self.styles.get(name, "white")
        return Text.assemble((f"{name:<{self.width}} | ", style), line)


def print_tail(console: Console, sources: list[LogSource], count: int) -> None:
    """Print the last ``count`` lines of every source, prefixed."""
    prefixer = Prefixer([source.name for source in sources])
    for source in sources:
        for line in last_lines(source.path, count):
            console.print(prefixer.format(source.name, line))


def end_offsets(sources: list[LogSource]) -> dict[Path, int]:
    """Return the current size of every source, for ``follow`` to start from."""
    return {source.path: _size(source.path) for source in sources}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def follow(sources: list[LogSource], offsets: dict[Path, int], keep_going: Callable[[], bool]) -> Iterator[tuple[str, str]]:
    """Yield (source name, line) for every line appended after ``offsets`` while ``keep_going()`` is true."""
    offsets = dict(offsets)
    pending = {source.path: b"" for source in sources}
    while True:
        for source in sources:
            for line in _read_new_lines(source.path, offsets, pending):
                yield source.name, line
        if not keep_going():
            return
        time.sleep(FOLLOW_INTERVAL_S)


def _read_new_lines(path: Path, offsets: dict[Path, int], pending: dict[Path, bytes]) -> list[str]:
    size = _size(path)
    start = offsets.get(path, 0)
    if size < start:
        start = 0  # the file was truncated or replaced: read it from the start
    if size == start:
        return []
    with open(path, "rb") as file:
        file.seek(start)
        data = pending[path] + file.read(size - start)
    offsets[path] = size
    *complete, pending[path] = data.split(b"\n")
    return [line.decode(errors="replace") for line in complete]
