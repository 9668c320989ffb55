"""The main job end to end: a local stack, a bounded load, a report, a clean stop.

Runs ``scripts/main_job.py`` on a copy of the caffeine-manager app in a
temporary workspace with a single Redis server (a cluster takes longer to
start), on free loopback ports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vvkit.local.servers import free_port, port_is_open

REPO = Path(__file__).resolve().parents[2]
LOAD_S = 5


def make_workspace(root: Path, api_port: int) -> Path:
    shutil.copytree(REPO / "services" / "caffeine-manager", root / "services" / "caffeine-manager",
                    ignore=shutil.ignore_patterns("__pycache__", "tests"))
    (root / "vvkit.toml").write_text(
        '[workspace]\nname = "main-job-test"\n\n[redis]\ncluster = false\n\n'
        f"[api]\nport = {api_port}\n"
    )
    return root


@pytest.mark.slow
def test_main_job_reports_matching_counts(tmp_path):
    api_port = free_port()
    workspace = make_workspace(tmp_path / "ws", api_port)

    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "main_job.py"), str(workspace), "--duration", str(LOAD_S),
         "--concurrency", "8", "--factor", "4"],
        capture_output=True, text=True, timeout=240,
    )

    report = result.stdout
    assert result.returncode == 0, report + result.stderr[-3000:]
    assert "== main job report ==" in report
    assert "errors by status: none" in report
    match = re.search(r"coffees bought: (\d+)\s+stored by coffee: (\d+)\s+counted by stats: (\d+)", report)
    assert match, report
    bought, stored, counted = (int(group) for group in match.groups())
    assert bought > 0
    assert bought == stored == counted
    assert re.search(r"PUT /coffee/buy\s+\d+ requests\s+p50\s+[\d.]+ ms\s+p99\s+[\d.]+ ms", report)
    assert re.search(r"caffeine level of user \d+: [\d.]+ mg", report)
    assert not port_is_open(api_port), "vvkit down left the gateway running"
