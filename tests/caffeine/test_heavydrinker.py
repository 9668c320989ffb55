"""The heavydrinker's load loop and report, against a small aiohttp server on loopback.

The server replaces the gateway's three routes and returns the status that
each test scripts, so the counts in the report can be checked exactly.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from vv.testing import run_service

REPO = Path(__file__).resolve().parents[2]
SERVICE_FILE = REPO / "services" / "coffee-drinkers" / "heavydrinker" / "service.py"


def load_heavydrinker():
    spec = importlib.util.spec_from_file_location("coffee_drinkers__heavydrinker__service", SERVICE_FILE)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


heavydrinker = load_heavydrinker()


class FakeGateway:
    """Counts requests per route; ``buy_statuses`` scripts the status of each buy in turn."""

    def __init__(self, buy_statuses=None):
        self.ids = itertools.count(1)
        self.requests = {"user": 0, "machine": 0, "buy": 0}
        self.buy_statuses = iter(buy_statuses or [])
        self.bodies = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def user(self, request):
        self.requests["user"] += 1
        self.bodies.append(await request.json())
        return web.json_response({"response": {"id": next(self.ids)}})

    async def machine(self, request):
        self.requests["machine"] += 1
        self.bodies.append(await request.json())
        return web.json_response({"response": {"id": next(self.ids)}})

    async def buy(self, request):
        self.requests["buy"] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.002)
            status = next(self.buy_statuses, 200)
            if status != 200:
                return web.json_response({"error_code": status, "error_text": "scripted"}, status=status)
            return web.json_response({"response": {"id": next(self.ids)}})
        finally:
            self.in_flight -= 1

    def app(self):
        app = web.Application()
        app.router.add_put("/user", self.user)
        app.router.add_post("/machine", self.machine)
        app.router.add_put("/coffee/buy/{user_id:\\d+}/{machine_id:\\d+}", self.buy)
        return app


@pytest.fixture
async def serve():
    runners = []

    async def start(gateway: FakeGateway) -> str:
        runner = web.AppRunner(gateway.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_rounds_buy_factor_times_users(serve):
    gateway = FakeGateway()
    url = await serve(gateway)

    report = await heavydrinker.run_load(heavydrinker.LoadOptions(url, factor=3, concurrency=4, rounds=2))

    # Round 1: 5 users → 15 buys; round 2: 10 users → 30 buys.
    assert gateway.requests == {"user": 10, "machine": 4, "buy": 45}
    assert report["rounds"] == 2
    assert report["users"] == 10
    assert report["machines"] == 4
    assert report["buys_ok"] == 45
    assert report["requests"] == 59
    assert report["errors"] == {}
    assert report["routes"]["PUT /coffee/buy"]["requests"] == 45
    assert report["routes"]["PUT /user"]["ok"] == 10


async def test_concurrency_is_bounded(serve):
    gateway = FakeGateway()
    url = await serve(gateway)

    await heavydrinker.run_load(heavydrinker.LoadOptions(url, factor=20, concurrency=3, rounds=1))

    assert gateway.max_in_flight == 3


async def test_errors_counted_by_status(serve):
    gateway = FakeGateway(buy_statuses=[200, 500, 404, 500, 503])
    url = await serve(gateway)

    report = await heavydrinker.run_load(heavydrinker.LoadOptions(url, factor=2, concurrency=1, rounds=1))

    assert report["buys_ok"] == 6  # 10 buys, 4 of them scripted to fail
    assert report["errors"] == {"404": 1, "500": 2, "503": 1}
    assert report["routes"]["PUT /coffee/buy"]["errors"] == {"404": 1, "500": 2, "503": 1}
    assert report["routes"]["PUT /user"]["errors"] == {}


async def test_unreachable_gateway_counts_status_zero(serve):
    gateway = FakeGateway()
    url = await serve(gateway)
    closed_url = url.rsplit(":", 1)[0] + ":1"

    report = await heavydrinker.run_load(heavydrinker.LoadOptions(closed_url, rounds=1))

    assert report["users"] == 0
    assert report["errors"] == {"0": 7}


async def test_duration_stops_the_load(serve):
    gateway = FakeGateway()
    url = await serve(gateway)

    report = await heavydrinker.run_load(heavydrinker.LoadOptions(url, factor=50, concurrency=8, duration_s=0.5))

    assert 0.4 < report["elapsed_s"] < 3.0
    assert report["buys_ok"] == gateway.requests["buy"]


async def test_round_log_counts_failures(serve, caplog):
    gateway = FakeGateway(buy_statuses=[200, 500, 404, 500, 503])
    url = await serve(gateway)

    with caplog.at_level(logging.INFO, logger=heavydrinker.logger.name):
        await heavydrinker.run_load(heavydrinker.LoadOptions(url, factor=2, concurrency=1, rounds=1))

    [line] = [record.getMessage() for record in caplog.records if "round 1 in" in record.getMessage()]
    assert "5 users, 2 machines, 10 buys sent, 6 ok, 4 failed" in line
    assert "cut short" not in line


async def test_round_log_names_time_limit(serve, caplog):
    gateway = FakeGateway()
    url = await serve(gateway)

    with caplog.at_level(logging.INFO, logger=heavydrinker.logger.name):
        report = await heavydrinker.run_load(heavydrinker.LoadOptions(url, factor=1000, concurrency=2, duration_s=0.3))

    lines = [record.getMessage() for record in caplog.records if " buys sent, " in record.getMessage()]
    assert len(lines) == report["rounds"]
    last = re.search(r"(\d+) buys sent, (\d+) ok, (\d+) failed .*; cut short by the time limit: "
                     r"(\d+) of (\d+) planned buys not sent$", lines[-1])
    assert last, lines[-1]
    sent, ok, failed, not_sent, planned = map(int, last.groups())
    assert sent == gateway.requests["buy"]
    assert ok == sent
    assert failed == 0
    assert sent + not_sent == planned == 5000


def test_options_reject_invalid_values():
    with pytest.raises(ValueError, match="invalid concurrency 0"):
        heavydrinker.LoadOptions(concurrency=0)
    with pytest.raises(ValueError, match="invalid factor 0"):
        heavydrinker.LoadOptions(factor=0)
    with pytest.raises(ValueError, match="invalid duration -1"):
        heavydrinker.LoadOptions(duration_s=-1)


def test_options_from_environment():
    options = heavydrinker.LoadOptions.from_env(
        {"GATEWAY_URL": "http://127.0.0.1:9", "FACTOR": "4", "CONCURRENCY": "8", "DURATION_S": "2.5", "ROUNDS": ""}
    )

    assert options == heavydrinker.LoadOptions("http://127.0.0.1:9", 4, 8, 2.5, None)


def test_options_from_environment_rejects_text():
    with pytest.raises(ValueError, match="invalid FACTOR='many': expected a int"):
        heavydrinker.LoadOptions.from_env({"FACTOR": "many"})


def test_percentile_nearest_rank():
    latencies_s = [i / 1000 for i in range(1, 101)]

    assert heavydrinker.percentile_ms(latencies_s, 50) == 50.0
    assert heavydrinker.percentile_ms(latencies_s, 99) == 99.0
    assert heavydrinker.percentile_ms([0.005], 99) == 5.0
    assert heavydrinker.percentile_ms([], 50) == 0.0


async def test_program_writes_json_report(serve, tmp_path):
    gateway = FakeGateway()
    url = await serve(gateway)
    report_path = tmp_path / "report.json"

    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVICE_FILE), "--gateway", url, "--rounds", "1", "--factor", "2", "--json", str(report_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()

    assert process.returncode == 0, stderr.decode()
    assert "errors by status: none" in stdout.decode()
    assert "5 users, 2 machines, 10 buys sent, 10 ok, 0 failed" in stderr.decode()
    report = json.loads(report_path.read_text())
    assert report["buys_ok"] == 10
    logins = [body["login"] for body in gateway.bodies if "login" in body]
    assert len(set(logins)) == 5
    assert all(body["email"] == body["login"] + "@example.com" and body["password"] for body in gateway.bodies if "login" in body)


async def test_component_runs_load_from_environment(serve, app_name, redis_url, monkeypatch):
    gateway = FakeGateway()
    url = await serve(gateway)
    monkeypatch.setenv("GATEWAY_URL", url)
    monkeypatch.setenv("ROUNDS", "1")
    monkeypatch.setenv("FACTOR", "2")

    async with run_service(heavydrinker.Heavydrinker, app=app_name, transport=redis_url) as service:
        deadline = asyncio.get_running_loop().time() + 10
        while gateway.requests["buy"] < 10 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    assert gateway.requests == {"user": 5, "machine": 2, "buy": 10}
    assert service.service.component == "heavydrinker"


async def test_buy_phase_time_excludes_sign_ups(serve):
    gateway = FakeGateway()
    url = await serve(gateway)

    report = await heavydrinker.run_load(heavydrinker.LoadOptions(url, factor=4, concurrency=2, rounds=2))

    assert 0 < report["buy_phase_s"] < report["elapsed_s"]
    # buy_phase_s is rounded to milliseconds in the report, so the rate matches only closely.
    assert report["buys_per_buy_phase_s"] == pytest.approx(report["buys_ok"] / report["buy_phase_s"], rel=0.05)
