"""The environment from component_environment starts a real service, and the health probe reaches it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_helpers import make_workspace

from vvkit.deploy.infrastructure import HEALTH_PROBE_COMMAND
from vvkit.deploy.model import component_environment
from vvkit.workspace import Workspace

VV_START = shutil.which("vv-start", path=str(Path(sys.executable).parent)) or shutil.which("vv-start")
PROBE_TIMEOUT_S = 20
START_TIMEOUT_S = 20


def run_probe(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *HEALTH_PROBE_COMMAND[1:]]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)


@pytest.mark.skipif(VV_START is None, reason="vv-start is not installed")
def test_probe_reaches_local_service(tmp_path: Path, redis_url: str, app_name: str):
    root = make_workspace(tmp_path / "ws", {f"{app_name}/user": {}})
    workspace = Workspace.load(root)
    component = workspace.components()[0]
    environment = {
        **os.environ,
        **component_environment(workspace, component, local=True, transport=redis_url, cluster=False),
    }
    log_path = tmp_path / "service.log"

    with log_path.open("w") as log:
        service = subprocess.Popen([VV_START], env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=root)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while "started" not in log_path.read_text() and time.monotonic() < deadline and service.poll() is None:
                time.sleep(0.1)
            healthy = run_probe(environment)
        finally:
            service.terminate()
            service.wait(timeout=20)

    assert healthy.returncode == 0, healthy.stderr + log_path.read_text()
    stopped = run_probe(environment)
    assert stopped.returncode == 1
    assert f"health check of {app_name}.user failed" in stopped.stderr
