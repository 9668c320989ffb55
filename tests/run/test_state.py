"""The run state file: atomic writes, round trips and the pid ownership check."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from vvkit.local.state import (
    ProcessRecord,
    ProcessState,
    RunState,
    StackState,
    create_time_of,
    process_matches,
    read_state,
    state_path,
    write_state,
)


def _state() -> RunState:
    return RunState(
        workspace="/ws",
        state=StackState.RUNNING,
        supervisor_pid=os.getpid(),
        supervisor_create_time=create_time_of(os.getpid()),
        redis_url="redis://127.0.0.1:1234/0",
        servers=[ProcessRecord(name="redis", kind="redis", state=ProcessState.RUNNING, port=1234)],
        services=[ProcessRecord(name="shop-echo", kind="service", service_id="shop.echo", component="shop/echo")],
    )


def test_state_round_trip(tmp_path):
    write_state(tmp_path, _state())

    loaded = read_state(tmp_path)

    assert loaded.redis_url == "redis://127.0.0.1:1234/0"
    assert loaded.find("redis").port == 1234
    assert loaded.find("shop-echo").component == "shop/echo"
    assert loaded.updated_at > 0


def test_state_write_leaves_no_temporary_file(tmp_path):
    write_state(tmp_path, _state())
    write_state(tmp_path, _state())

    assert sorted(path.name for path in state_path(tmp_path).parent.iterdir()) == ["state.json"]


def test_state_missing_or_broken_reads_as_none(tmp_path):
    assert read_state(tmp_path) is None

    state_path(tmp_path).parent.mkdir(parents=True)
    state_path(tmp_path).write_text("{not json")

    assert read_state(tmp_path) is None


def test_state_ignores_unknown_keys(tmp_path):
    write_state(tmp_path, _state())
    text = state_path(tmp_path).read_text().replace('"workspace"', '"later_key": 1, "workspace"', 1)
    state_path(tmp_path).write_text(text)

    assert read_state(tmp_path).workspace == "/ws"


def test_process_matches_checks_start_time():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = create_time_of(child.pid)

        assert process_matches(child.pid, started)
        # The same pid with another start time is a different process: never ours.
        assert not process_matches(child.pid, started - 100)
        assert not process_matches(child.pid, None)
    finally:
        child.kill()
        child.wait()

    assert not process_matches(child.pid, started)


def test_supervisor_alive_needs_supervisor_command():
    # This test process has the recorded pid and start time, but it is not
    # running vvkit.local.supervisor, so it must not count as the supervisor.
    assert not _state().supervisor_alive()


def test_uptime_only_for_live_states():
    record = ProcessRecord(name="x", kind="service", state=ProcessState.RUNNING, started_at=time.time() - 5)

    assert 4.5 < record.uptime_s() < 10

    record.state = ProcessState.STOPPED

    assert record.uptime_s() is None
