"""Checks that `up`, `down`, `ps`, `logs`, `call` and `doctor` make before they start or stop anything."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.run.conftest import COMMAND_TIMEOUT_S, VVKIT, kill_recorded, make_workspace
from vvkit.errors import VvkitError
from vvkit.local.logs import select_sources
from vvkit.local.requirements import unmet_requirements
from vvkit.local.runner import failure_report
from vvkit.local.state import ProcessRecord, ProcessState, RunState, state_path, write_state
from vvkit.workspace import Workspace


@pytest.fixture
def bare_workspace(tmp_path):
    """A workspace with a vvkit.toml and no components: enough for commands that only read .vvkit/."""
    root = tmp_path / "bare"
    root.mkdir()
    (root / "vvkit.toml").write_text('[workspace]\nname = "bare"\n')
    return root


@pytest.fixture(scope="module")
def echo_workspace(tmp_path_factory):
    """A workspace with shop/echo, shared by the tests here because none of them may start it.

    A stack that `up` started by mistake is stopped after the last test.
    """
    root = tmp_path_factory.mktemp("echo")
    env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache")}
    env.pop("VVKIT_WORKSPACE", None)

    def run(*args: str, cwd: Path = root, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*VVKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, check=check,
                              timeout=COMMAND_TIMEOUT_S)

    workspace = make_workspace(root, run)
    yield workspace
    subprocess.run([*VVKIT, "down", "--workspace", str(workspace)], capture_output=True, timeout=COMMAND_TIMEOUT_S)
    kill_recorded(workspace)


@pytest.mark.parametrize("port", ["0", "-1", "65536"])
def test_up_rejects_api_port_out_of_range(echo_workspace, run_vvkit, port):
    up = run_vvkit("up", "--local", "--detach", "--api-port", port, cwd=echo_workspace)

    assert up.returncode == 1
    assert f"invalid --api-port {port}" in up.stderr
    assert not state_path(echo_workspace / ".vvkit").exists()


@pytest.mark.parametrize("timeout", ["0", "-2"])
def test_up_rejects_timeout_not_above_zero(echo_workspace, run_vvkit, timeout):
    up = run_vvkit("up", "--local", "--detach", "--timeout", timeout, cwd=echo_workspace)

    assert up.returncode == 1
    assert "invalid --timeout" in up.stderr
    assert not state_path(echo_workspace / ".vvkit").exists()


@pytest.mark.parametrize("timeout", ["inf", "nan", "0", "0.0001"])
def test_call_rejects_invalid_timeout(echo_workspace, run_vvkit, timeout):
    call = run_vvkit("call", "--timeout", timeout, "shop/echo", "health", cwd=echo_workspace)

    assert call.returncode == 1
    assert f"invalid --timeout {float(timeout)}" in call.stderr
    assert "Traceback" not in call.stderr


def test_up_names_unmet_requirements(echo_workspace, run_vvkit):
    requirements = echo_workspace / "services" / "shop" / "echo" / "requirements.txt"
    scaffolded = requirements.read_text()
    requirements.write_text("# comment\nvvkit-test-no-such-package>=1.0\n-e ./vendored\nrich>=1  # installed\n")
    try:
        up = run_vvkit("up", "--local", "--detach", cwd=echo_workspace)
    finally:
        requirements.write_text(scaffolded)

    assert up.returncode == 1
    assert "shop/echo needs vvkit-test-no-such-package>=1.0" in up.stderr
    assert "rich" not in up.stderr.split("needs", 1)[1]
    assert f"{sys.executable} -m pip install -r services/shop/echo/requirements.txt" in up.stderr
    assert "cannot check '-e ./vendored'" in up.stderr
    assert not state_path(echo_workspace / ".vvkit").exists()


def test_unmet_requirements_checks_versions_and_markers(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text('rich<1\nrich>=1\nno-such-package-for-vvkit; python_version < "3"\n\n')

    unmet = unmet_requirements(path)

    assert len(unmet) == 1
    assert unmet[0].startswith("rich<1 (installed: ")


def test_failure_report_quotes_only_this_run(bare_workspace, tmp_path):
    log = tmp_path / "shop-echo.log"
    log.write_text("line from an earlier run\n")
    offsets = {log: log.stat().st_size}
    log.write_text(log.read_text() + "line from this run\n")
    record = ProcessRecord(name="shop-echo", kind="service", state=ProcessState.STARTING, log=str(log))
    state = RunState(workspace=str(tmp_path), services=[record])

    report = failure_report(Workspace.load(bare_workspace), state, offsets)

    assert "shop-echo is starting; last log lines:" in report
    assert "line from this run" in report
    assert "earlier run" not in report
    assert "exit code" not in report


def test_call_unknown_component_fails_at_once(echo_workspace, run_vvkit):
    called = run_vvkit("call", "shop/nope", "hello", cwd=echo_workspace)

    assert called.returncode == 1
    assert "no component shop/nope in this workspace; see 'vvkit list'" in called.stderr


def test_down_purge_without_terminal_asks_for_yes(bare_workspace, vvkit_env):
    (bare_workspace / ".vvkit" / "logs").mkdir(parents=True)

    down = subprocess.run([*VVKIT, "down", "--purge"], cwd=bare_workspace, env=vvkit_env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)

    assert down.returncode == 1
    assert "pass --yes" in down.stderr
    assert (bare_workspace / ".vvkit" / "logs").is_dir()


def _dead_state(root) -> RunState:
    """A state whose processes are gone, as a supervisor that was killed leaves it."""
    service = ProcessRecord(name="shop-echo", kind="service", state=ProcessState.RUNNING, pid=os.getpid(),
                            create_time=1.0, component="shop/echo", started_at=time.time())
    return RunState(workspace=str(root), state="running", services=[service])


def test_ps_prints_table_on_stdout(bare_workspace, run_vvkit):
    write_state(bare_workspace / ".vvkit", _dead_state(bare_workspace))

    ps = run_vvkit("ps", cwd=bare_workspace)

    assert ps.returncode == 0, ps.stderr
    assert "shop-echo" in ps.stdout
    assert "stopped" in ps.stdout
    assert ps.stderr == ""


def test_doctor_prints_table_on_stdout_without_warnings(vvkit_env, tmp_path):
    env = {key: value for key, value in vvkit_env.items() if key != "XDG_RUNTIME_DIR"}

    doctor = subprocess.run([*VVKIT, "doctor"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    assert doctor.returncode == 0, doctor.stderr
    assert "vv-start" in doctor.stdout
    assert "vvkit up would use:" in doctor.stdout
    assert doctor.stderr == ""


def test_logs_help_names_no_server_of_one_mode(run_vvkit):
    help_text = run_vvkit("logs", "--help").stdout

    assert "'redis'" not in help_text
    assert "'postgres'" not in help_text
    assert "vvkit ps" in help_text


def test_logs_rejects_negative_line_count(bare_workspace, run_vvkit):
    logs = run_vvkit("logs", "-n", "-1", cwd=bare_workspace)

    assert logs.returncode == 1
    assert "invalid --lines -1" in logs.stderr


def test_logs_unknown_name_lists_cluster_nodes_and_components(tmp_path):
    nodes = [ProcessRecord(name=f"redis-node-{i}", kind="redis", log=str(tmp_path / f"{i}.log")) for i in range(3)]
    echo = ProcessRecord(name="shop-echo", kind="service", component="shop/echo", log=str(tmp_path / "e.log"))
    state = RunState(workspace=str(tmp_path), cluster=True, servers=nodes, services=[echo])

    with pytest.raises(VvkitError) as raised:
        select_sources(tmp_path, state, ["redis"])

    message = str(raised.value)
    assert "redis-node-0" in message
    assert "shop/echo" in message
    assert "redis," not in message
