"""Reading and following the local stack's log files."""

from __future__ import annotations

import threading
import time

import pytest

from vvkit.errors import VvkitError
from vvkit.local.logs import LogSource, Prefixer, follow, last_lines, select_sources
from vvkit.local.state import ProcessRecord, RunState


def test_last_lines_of_large_file(tmp_path):
    path = tmp_path / "a.log"
    path.write_text("".join(f"line {i}\n" for i in range(20_000)))

    assert last_lines(path, 3) == ["line 19997", "line 19998", "line 19999"]
    assert last_lines(path, 0) == []
    assert last_lines(tmp_path / "missing.log", 5) == []


def test_follow_yields_appended_lines_in_order(tmp_path):
    path = tmp_path / "a.log"
    path.write_text("old\n")
    sources = [LogSource("a", path)]
    done = threading.Event()

    def append() -> None:
        with open(path, "a") as log:
            log.write("first\nsec")
            log.flush()
            time.sleep(0.3)
            log.write("ond\n")
        time.sleep(0.3)
        done.set()

    offsets = {path: path.stat().st_size}
    writer = threading.Thread(target=append)
    writer.start()
    lines = list(follow(sources, offsets, lambda: not done.is_set()))
    writer.join()

    # A line written in two parts comes out once, whole.
    assert lines == [("a", "first"), ("a", "second")]


def test_follow_reads_a_file_created_later(tmp_path):
    path = tmp_path / "late.log"
    calls = iter([True, False])

    def keep_going() -> bool:
        path.write_text("hello\n")
        return next(calls)

    assert list(follow([LogSource("late", path)], {}, keep_going)) == [("late", "hello")]


def _state(tmp_path) -> RunState:
    def service(name: str) -> ProcessRecord:
        return ProcessRecord(name=name, kind="service", component="shop/echo", log=str(tmp_path / f"{name}.log"))

    redis = ProcessRecord(name="redis", kind="redis", log=str(tmp_path / "redis.log"))
    return RunState(workspace=str(tmp_path), servers=[redis], services=[service("shop-echo-1"), service("shop-echo-2")])


def test_select_by_component_gives_every_replica(tmp_path):
    state = _state(tmp_path)

    assert [s.name for s in select_sources(tmp_path, state, ["echo"])] == ["shop-echo-1", "shop-echo-2"]
    assert [s.name for s in select_sources(tmp_path, state, ["shop/echo"])] == ["shop-echo-1", "shop-echo-2"]
    assert [s.name for s in select_sources(tmp_path, state, ["shop-echo-2", "redis"])] == ["shop-echo-2", "redis"]
    assert [s.name for s in select_sources(tmp_path, state, [])] == ["shop-echo-1", "shop-echo-2"]


def test_select_unknown_name_lists_known_ones(tmp_path):
    with pytest.raises(VvkitError, match="no log for 'nope': use one of redis, shop-echo-1"):
        select_sources(tmp_path, _state(tmp_path), ["nope"])


def test_prefix_is_aligned():
    prefixer = Prefixer(["a", "longer"])

    assert prefixer.format("a", "x").plain == "a      | x"
    assert prefixer.format("longer", "y").plain == "longer | y"
