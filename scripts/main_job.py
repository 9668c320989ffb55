"""The main job: the caffeine-manager stack under load, end to end.

Starts the workspace's caffeine-manager app with ``vvkit up --local
--detach`` (embedded Redis and PostgreSQL when the machine has none), runs
the heavydrinker load generator against the gateway for a bounded time,
waits for the stats service to count every coffee, prints a report and
stops the stack.

Exit status: 0 when every request got a response below 500 and the buys that
succeeded equal the coffees stored by the coffee service and the coffees
counted by stats; 1 otherwise; 2 when the stack could not start.

    python scripts/main_job.py [WORKSPACE] [--duration 30] [--concurrency 32] [--factor 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
APP = "caffeine-manager"
# The main job starts only the caffeine-manager app: it runs the load
# generator itself, for a bounded time, instead of the heavydrinker component.
COMPONENTS = [f"{APP}/{name}" for name in ("api", "user", "machine", "coffee", "stats")]
HEAVYDRINKER = Path("services") / "coffee-drinkers" / "heavydrinker" / "service.py"
DEFAULT_API_PORT = 8080
HEALTH_TIMEOUT_S = 120.0
# Stats reads the coffee service's events asynchronously; after the load
# stops, wait at most this long for its count to reach the coffee count.
DRAIN_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.5
HTTP_TIMEOUT_S = 30.0

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_NOT_STARTED = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the caffeine-manager stack under load and report.")
    parser.add_argument("workspace", nargs="?", type=Path, default=REPO, help="workspace root (default: this repository)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--factor", type=int, default=10, help="coffees per user in each round (default 10)")
    parser.add_argument("--api-port", type=int, help="port of the gateway (default: [api] port in vvkit.toml, else 8080)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running at the end")
    return parser.parse_args(argv)


def api_port(workspace: Path) -> int:
    """Return the gateway's port from ``[api] port`` in vvkit.toml."""
    settings = tomllib.loads((workspace / "vvkit.toml").read_text())
    return int(settings.get("api", {}).get("port", DEFAULT_API_PORT))


def vvkit(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the vvkit CLI of this interpreter in ``workspace``; its output goes to this terminal."""
    command = [sys.executable, "-m", "vvkit", *args]
    print("$ vvkit " + " ".join(args), file=sys.stderr, flush=True)
    return subprocess.run(command, cwd=workspace, check=False)


def get(gateway: str, path: str) -> tuple[int, Any]:
    """GET a gateway path and return the status and the decoded envelope."""
    try:
        with urllib.request.urlopen(gateway + path, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_healthy(gateway: str) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    status, body = 0, None
    while time.monotonic() < deadline:
        try:
            status, body = get(gateway, "/health")
        except OSError as exc:
            status, body = 0, str(exc)
        if status == 200:
            return
        time.sleep(POLL_INTERVAL_S)
    raise RuntimeError(f"the gateway at {gateway} did not report healthy within {HEALTH_TIMEOUT_S:.0f} s: {status} {body}")


def run_heavydrinker(gateway: str, options: argparse.Namespace) -> dict[str, Any]:
    """Run the load generator as its own process and return its JSON report."""
    with tempfile.TemporaryDirectory() as folder:
        report_path = Path(folder) / "heavydrinker.json"
        command = [
            sys.executable, str(REPO / HEAVYDRINKER), "--gateway", gateway,
            "--duration", str(options.duration), "--concurrency", str(options.concurrency),
            "--factor", str(options.factor), "--json", str(report_path),
        ]
        subprocess.run(command, check=True)
        return json.loads(report_path.read_text())


def count(gateway: str, path: str) -> int:
    status, body = get(gateway, path)
    if status != 200:
        raise RuntimeError(f"GET {path} returned {status}: {body}")
    return body["response"]["count"]


def snapshot(gateway: str) -> dict[str, int]:
    """Count what the services hold now: users, machines, coffees stored and coffees counted by stats."""
    return {
        "users": len(get(gateway, "/user/list")[1]["response"]["users"]),
        "machines": len(get(gateway, "/machine/list")[1]["response"]["machines"]),
        "stored": count(gateway, "/coffee/count"),
        "counted": count(gateway, "/stats/coffee/count"),
    }


def wait_stats_drained(gateway: str, expected: int) -> tuple[int, float]:
    """Poll the stats count until it reaches ``expected`` or the drain timeout passes; return it and the seconds waited."""
    started = time.monotonic()
    counted = count(gateway, "/stats/coffee/count")
    while counted < expected and time.monotonic() - started < DRAIN_TIMEOUT_S:
        time.sleep(POLL_INTERVAL_S)
        counted = count(gateway, "/stats/coffee/count")
    return counted, time.monotonic() - started


def collect(gateway: str, load: dict[str, Any], before: dict[str, int]) -> dict[str, Any]:
    """Read the figures of the report from the services; counts are this run's, not the workspace's totals.

    The workspace keeps its data between runs (under .vvkit/), so the job
    compares what changed during its own run.
    """
    stored = count(gateway, "/coffee/count")
    _, drain_s = wait_stats_drained(gateway, before["counted"] + stored - before["stored"])
    after = snapshot(gateway)
    figures = {
        "users": after["users"] - before["users"],
        "machines": after["machines"] - before["machines"],
        "coffees_bought": load["buys_ok"],
        "coffees_stored": after["stored"] - before["stored"],
        "coffees_counted_by_stats": after["counted"] - before["counted"],
        "stats_drain_s": round(drain_s, 1),
        "totals": after,
    }
    if load["user_ids"]:
        user_id = load["user_ids"][0]
        figures["level_user"] = get(gateway, f"/stats/level/user/{user_id}")[1].get("response")
    return figures


def print_report(load: dict[str, Any], figures: dict[str, Any]) -> list[str]:
    """Print the report and return the checks that failed."""
    totals = figures["totals"]
    print("\n== main job report ==")
    print(f"users added: {figures['users']} (total {totals['users']})   machines added: {figures['machines']} (total {totals['machines']})")
    print(
        f"coffees bought: {figures['coffees_bought']}   stored by coffee: {figures['coffees_stored']}   "
        f"counted by stats: {figures['coffees_counted_by_stats']} (stats caught up {figures['stats_drain_s']} s after the load)"
    )
    print(
        f"requests: {load['requests']} in {load['elapsed_s']} s ({load['requests_per_s']}/s); "
        f"buys {load['buys_per_s']}/s overall, {load['buys_per_buy_phase_s']}/s during buy phases "
        f"({load['buy_phase_s']} s, sign-ups excluded)"
    )
    print("errors by status: " + (", ".join(f"{status}: {n}" for status, n in load["errors"].items()) or "none"))
    for route, route_figures in load["routes"].items():
        print(
            f"  {route:<16} {route_figures['requests']:>7} requests  "
            f"p50 {route_figures['p50_ms']:>7.2f} ms  p99 {route_figures['p99_ms']:>7.2f} ms"
        )
    level = figures.get("level_user")
    if level:
        window = ", ".join(f"{value:g}" for value in level["window"])
        print(f"caffeine level of user {level['user_id']}: {level['level']:g} mg; by hour, newest first: {window}")

    failed = []
    # Status 0 means no HTTP response at all, which counts as a server failure.
    server_errors = {status: n for status, n in load["errors"].items() if int(status) >= 500 or int(status) == 0}
    if server_errors:
        failed.append(f"requests failed with 5xx or without a response: {server_errors}")
    if not figures["coffees_bought"] == figures["coffees_stored"] == figures["coffees_counted_by_stats"]:
        failed.append("coffees bought, stored by coffee and counted by stats differ")
    for check in failed:
        print(f"FAILED: {check}")
    return failed


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    workspace = options.workspace.resolve()
    port = options.api_port or api_port(workspace)
    gateway = f"http://127.0.0.1:{port}"

    if vvkit(workspace, "up", "--local", "--detach", "--api-port", str(port), *COMPONENTS).returncode != 0:
        return EXIT_NOT_STARTED
    failed = ["the job stopped before its checks ran"]
    try:
        wait_healthy(gateway)
        before = snapshot(gateway)
        load = run_heavydrinker(gateway, options)
        failed = print_report(load, collect(gateway, load, before))
    finally:
        if not options.keep:
            vvkit(workspace, "down")
    return EXIT_CHECK_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
