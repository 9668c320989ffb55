"""examples/vloop_example.py run as a program against a local server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .http_server import CHUNKS, refused_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vloop_example.py"


def run_example(*args: str) -> tuple[int, dict[str, str]]:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=60, check=False
    )
    fields = {}
    for line in completed.stdout.splitlines():
        label, _, value = line.partition(":")
        fields[label] = value.strip()
    return completed.returncode, fields


@pytest.mark.parametrize("mode", ["calling", "passing"])
def test_normal_response(http_server, mode):
    code, fields = run_example(
        "--port", str(http_server.port), "--path", "/normal", "--param", "q=coffee", "--param", "n=2", "--mode", mode
    )

    assert code == 0
    assert fields["host"] == f"127.0.0.1:{http_server.port}"
    assert fields["protocol"] == "HTTP/1.1"
    assert fields["status"] == "OK"
    assert fields["code"] == "200"
    assert fields["content length"] == str(len("target=/normal?q=coffee&n=2"))
    assert int(fields["numbers added"]) >= 1
    assert fields["time taken"].endswith(" ms")


def test_chunked_response(http_server):
    code, fields = run_example("--port", str(http_server.port), "--path", "/chunked")

    assert code == 0
    assert fields["code"] == "200"
    assert fields["content length"] == str(len(b"".join(CHUNKS)))
    # The chunks take at least 20 ms to arrive, and numbers are added all the while.
    assert int(fields["numbers added"]) > 100


def test_server_that_never_answers(http_server):
    code, fields = run_example("--port", str(http_server.silent_port), "--timeout", "0.5", "--mode", "passing")

    assert code == 1
    assert fields["code"] == "408"
    assert fields["status"] == "Request Timeout"
    assert "within 0.5 s" in fields["error"]


def test_refused_port():
    port = refused_port()

    code, fields = run_example("--port", str(port))

    assert code == 1
    assert fields["code"] == "-"
    assert fields["error"] == f"connection to 127.0.0.1:{port} failed: [Errno 111] Connection refused"


def test_invalid_param():
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), "--param", "novalue"], capture_output=True, text=True, timeout=60, check=False
    )

    assert completed.returncode == 1
    assert "invalid --param 'novalue': use name=value" in completed.stderr
