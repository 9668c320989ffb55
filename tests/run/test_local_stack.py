"""End to end: `vvkit up --local` with real Redis, PostgreSQL and vv-start processes.

The shared Redis (6379) and PostgreSQL (5432) of the test machine are
running, so these tests also check that the local runner picks other ports
and leaves those servers alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psutil
import pytest
import redis

from tests.run.conftest import (
    VVKIT,
    listening_ports,
    make_workspace,
    processes_by_name,
    ps_json,
    wait_for,
)
from vvkit.local.state import read_state

SHARED_PORTS = {6379, 5432}


def _call(run_vvkit, workspace, *args):
    return run_vvkit("call", "shop/echo", *args, cwd=workspace)


def _up(run_vvkit, workspace):
    """Run `up --local --detach`, which must succeed; fail with its stderr and the supervisor log otherwise."""
    up = run_vvkit("up", "--local", "--detach", cwd=workspace)
    log = workspace / ".vvkit" / "logs" / "supervisor.log"
    assert up.returncode == 0, up.stderr + (log.read_text()[-3000:] if log.exists() else "")
    return up


def _result(run_vvkit, workspace, *args):
    """Return the JSON result of a call that must succeed; fail with its stderr otherwise."""
    called = _call(run_vvkit, workspace, *args)
    assert called.returncode == 0, called.stderr
    return json.loads(called.stdout)


def _recorded(workspace):
    """Return every pid and port that the state file ever recorded for this stack."""
    state = read_state(workspace / ".vvkit")
    pids = {state.supervisor_pid} | {r.pid for r in state.processes if r.pid}
    ports = {r.port for r in state.processes if r.port}
    return pids, ports


def _assert_nothing_left(pids, ports):
    alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert ports & listening_ports() == set()


@pytest.mark.slow
def test_local_stack_lifecycle(tmp_path, run_vvkit, stop_stacks, shared_redis_url):
    workspace = make_workspace(tmp_path, run_vvkit)
    stop_stacks.append(workspace)
    assert run_vvkit("sync", cwd=workspace).returncode == 0

    # up --detach returns once every service replies to its health RPC.
    up = run_vvkit("up", "--local", "--detach", cwd=workspace)
    assert up.returncode == 0, up.stderr
    assert "every service is healthy" in up.stderr

    document = ps_json(run_vvkit, workspace)
    processes = processes_by_name(document)
    assert document["running"] is True
    assert set(processes) == {"redis", "postgres", "shop-echo"}
    assert all(p["state"] == "running" for p in processes.values())
    assert processes["shop-echo"]["health"] == "ok"
    assert processes["redis"]["port"] not in SHARED_PORTS
    assert processes["postgres"]["port"] not in SHARED_PORTS
    assert document["redis_url"] == f"redis://127.0.0.1:{processes['redis']['port']}/0"

    # A second up reports the running stack and starts nothing.
    again = run_vvkit("up", "--local", "--detach", cwd=workspace)
    assert again.returncode == 0
    assert "already running" in again.stderr
    assert processes_by_name(ps_json(run_vvkit, workspace))["shop-echo"]["pid"] == processes["shop-echo"]["pid"]

    # call: result on stdout; remote error → exit 1 with code and text; timeout → exit 2.
    added = _call(run_vvkit, workspace, "add", "a=2", "b=40")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == 42
    assert _result(run_vvkit, workspace, "add", "--json", "[1, 2]") == 3
    assert _result(run_vvkit, workspace, "hello", "name=E2E")["greeting"] == "hello, E2E"
    missing = _call(run_vvkit, workspace, "nope")
    assert missing.returncode == 1
    assert "404" in missing.stderr
    assert "nope" in missing.stderr
    invalid = _call(run_vvkit, workspace, "add", "a=1")
    assert invalid.returncode == 1
    assert "400" in invalid.stderr
    slow = _call(run_vvkit, workspace, "sleep", "seconds=3", "--timeout", "0.5")
    assert slow.returncode == 2
    assert "timed out" in slow.stderr
    assert _result(run_vvkit, workspace, "visit") == 1

    # kill -9 of the service: the supervisor starts it again and calls work.
    old_pid = processes["shop-echo"]["pid"]
    os.kill(old_pid, signal.SIGKILL)

    def restarted():
        echo = processes_by_name(ps_json(run_vvkit, workspace))["shop-echo"]
        return echo["pid"] not in (None, old_pid) and echo["health"] == "ok" and echo
    echo = wait_for(restarted, 20, "shop-echo to be restarted and healthy")
    assert echo["restarts"] == 1
    assert _result(run_vvkit, workspace, "visit") == 2
    log = run_vvkit("logs", "-n", "100", "echo", cwd=workspace).stdout
    assert "exited with code -9; restarting" in log

    # down: no process and no listening port is left.
    pids, ports = _recorded(workspace)
    pids.add(echo["pid"])
    down = run_vvkit("down", cwd=workspace)
    assert down.returncode == 0, down.stderr
    _assert_nothing_left(pids, ports)
    assert ps_json(run_vvkit, workspace)["running"] is False
    assert redis.Redis.from_url(shared_redis_url).ping()

    # A second up finds the data of the first.
    _up(run_vvkit, workspace)
    assert _result(run_vvkit, workspace, "visit") == 3
    assert run_vvkit("down", cwd=workspace).returncode == 0


@pytest.mark.slow
def test_up_moves_off_taken_port_and_keeps_data(tmp_path, run_vvkit, stop_stacks, redis_server_factory):
    workspace = make_workspace(tmp_path, run_vvkit)
    stop_stacks.append(workspace)
    _up(run_vvkit, workspace)
    assert _result(run_vvkit, workspace, "visit") == 1
    old_port = processes_by_name(ps_json(run_vvkit, workspace))["redis"]["port"]
    assert run_vvkit("down", cwd=workspace).returncode == 0

    # Another program (a Redis that vvkit did not start) takes the old port.
    stranger = redis_server_factory(port=old_port)
    stranger_client = redis.Redis.from_url(stranger.url)
    stranger_client.set("mine", "yes")

    _up(run_vvkit, workspace)
    new_port = processes_by_name(ps_json(run_vvkit, workspace))["redis"]["port"]
    assert new_port != old_port
    assert _result(run_vvkit, workspace, "visit") == 2
    assert run_vvkit("down", cwd=workspace).returncode == 0

    # down stopped only what vvkit started.
    assert stranger.process.poll() is None
    assert stranger_client.get("mine") == b"yes"
    assert stranger_client.dbsize() == 1
    stranger_client.close()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_foreground_up_stops_on_signal(tmp_path, run_vvkit, stop_stacks, vvkit_env, signum):
    workspace = make_workspace(tmp_path, run_vvkit)
    stop_stacks.append(workspace)
    up = subprocess.Popen([*VVKIT, "up", "--local"], cwd=workspace, env=vvkit_env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        state_file_ready = lambda: (state := read_state(workspace / ".vvkit")) and state.state == "running"  # noqa: E731
        wait_for(state_file_ready, 60, "the stack to be healthy")
        pids, ports = _recorded(workspace)
        time.sleep(0.5)  # let the log follower print the start-up lines
        up.send_signal(signum)
        stdout, stderr = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()

    assert up.returncode == 0, stderr
    assert "shop-echo | vvkit: started shop-echo" in stdout
    assert "stopped" in stderr
    _assert_nothing_left(pids, ports)


@pytest.mark.slow
def test_service_that_cannot_start_fails_up(tmp_path, run_vvkit, stop_stacks):
    workspace = make_workspace(tmp_path, run_vvkit)
    stop_stacks.append(workspace)
    service = workspace / "services" / "shop" / "echo" / "service.py"
    service.write_text(service.read_text() + "\nraise RuntimeError('broken on purpose')\n")

    up = run_vvkit("up", "--local", "--detach", cwd=workspace)

    assert up.returncode == 1
    assert "shop-echo is failed" in up.stderr
    assert "broken on purpose" in up.stderr
    pids, ports = _recorded(workspace)
    _assert_nothing_left(pids, ports)


@pytest.mark.slow
def test_cluster_stack_keeps_data(tmp_path, run_vvkit, stop_stacks):
    workspace = make_workspace(tmp_path, run_vvkit, cluster=True, nodes=6)
    stop_stacks.append(workspace)

    _up(run_vvkit, workspace)
    document = ps_json(run_vvkit, workspace)
    nodes = [p for p in document["processes"] if p["kind"] == "redis"]
    assert document["cluster"] is True
    assert len(nodes) == 6
    assert all(p["port"] + 10000 <= 65535 for p in nodes)
    assert _result(run_vvkit, workspace, "visit") == 1
    pids, ports = _recorded(workspace)
    assert run_vvkit("down", cwd=workspace).returncode == 0
    _assert_nothing_left(pids, ports)

    # The nodes rejoin the same cluster on their old ports, with their data.
    _up(run_vvkit, workspace)
    again = [p for p in ps_json(run_vvkit, workspace)["processes"] if p["kind"] == "redis"]
    assert [p["port"] for p in again] == [p["port"] for p in nodes]
    assert _result(run_vvkit, workspace, "visit") == 2
    assert run_vvkit("down", cwd=workspace).returncode == 0


@pytest.mark.slow
def test_killed_supervisor_leaves_nothing_after_down(tmp_path, run_vvkit, stop_stacks):
    workspace = make_workspace(tmp_path, run_vvkit)
    stop_stacks.append(workspace)
    _up(run_vvkit, workspace)
    state = read_state(workspace / ".vvkit")
    pids, ports = _recorded(workspace)
    service = state.find("shop-echo")

    os.kill(state.supervisor_pid, signal.SIGKILL)

    # The service dies with its supervisor; the servers are left to `down`.
    wait_for(lambda: not service.is_alive(), 10, "shop-echo to exit after its supervisor")
    document = ps_json(run_vvkit, workspace)
    assert document["running"] is False
    assert processes_by_name(document)["redis"]["state"] == "running"
    assert run_vvkit("down", cwd=workspace).returncode == 0
    _assert_nothing_left(pids, ports)


@pytest.mark.slow
def test_running_stack_survives_broken_toml(tmp_path, run_vvkit, stop_stacks):
    workspace = make_workspace(tmp_path, run_vvkit)
    stop_stacks.append(workspace)
    _up(run_vvkit, workspace)
    pids, ports = _recorded(workspace)

    # A component added after `up` is named as missing from the stack, and
    # calling it fails at once instead of after the timeout.
    run_vvkit("new", "shop/later", cwd=workspace, check=True)
    again = run_vvkit("up", "--local", "--detach", cwd=workspace)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    assert "not in the running stack: shop/later" in again.stderr
    assert "vvkit down && vvkit up" in again.stderr
    started = time.monotonic()
    later = run_vvkit("call", "shop/later", "hello", "--timeout", "30", cwd=workspace)
    assert later.returncode == 1
    assert "shop/later is not part of the running local stack" in later.stderr
    assert time.monotonic() - started < 20

    # ps, logs and down read only the state file, so a broken vvkit.toml
    # never leaves the stack unstoppable.
    toml = workspace / "vvkit.toml"
    toml.write_text(toml.read_text() + "\n[broken\n")
    ps = run_vvkit("ps", "--json", cwd=workspace)
    assert ps.returncode == 0, ps.stderr
    assert json.loads(ps.stdout)["running"] is True
    logs = run_vvkit("logs", "echo", cwd=workspace)
    assert logs.returncode == 0, logs.stderr
    assert "vvkit: started shop-echo" in logs.stdout
    down = run_vvkit("down", cwd=workspace)
    assert down.returncode == 0, down.stderr
    _assert_nothing_left(pids, ports)


@pytest.mark.slow
def test_health_timeout_names_real_timeout(tmp_path, run_vvkit, stop_stacks):
    workspace = make_workspace(tmp_path, run_vvkit)
    stop_stacks.append(workspace)

    up = run_vvkit("up", "--local", "--detach", "--timeout", "0.5", cwd=workspace)

    assert up.returncode == 1
    assert "within 0.5 s" in up.stderr
    assert "exit code None" not in up.stderr
    # The supervisor may have been stopped before it wrote a state file, so
    # look for it by its command line too.
    supervisors = [p for p in psutil.process_iter(["cmdline"])
                   if "vvkit.local.supervisor" in (p.info["cmdline"] or []) and str(workspace) in p.info["cmdline"]]
    assert supervisors == []
    if read_state(workspace / ".vvkit") is not None:
        pids, ports = _recorded(workspace)
        _assert_nothing_left(pids, ports)
