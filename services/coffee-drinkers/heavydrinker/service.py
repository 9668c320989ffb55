"""Load generator for the caffeine-manager gateway.

Each round adds a few users and machines with random names through the
gateway, then buys ``factor × users`` coffees (users counted over all rounds)
for random user and machine pairs, with at most ``concurrency`` requests in
flight. Rounds repeat until the duration or the round count is reached, or
forever when neither is set. At the end it prints the requests, the errors by
HTTP status and the p50/p99 latency of each route.

It runs two ways, with the same options:

- as the ``coffee-drinkers/heavydrinker`` component under ``vv-start``: the
  service starts the load when it starts and logs the report when the load
  ends or the service stops. Settings come from the environment variables
  below.
- as a program: ``python services/coffee-drinkers/heavydrinker/service.py
  --duration 30``, where options override the environment variables.
  ``--json FILE`` also writes the report as JSON, which the main job reads.

=====================  ==================  =================================
option                 environment         meaning
=====================  ==================  =================================
``--gateway``          ``GATEWAY_URL``     base URL of the gateway
``--factor``           ``FACTOR``          coffees per user in each round
``--concurrency``      ``CONCURRENCY``     maximum requests in flight
``--duration``         ``DURATION_S``      seconds to run; unset: no limit
``--rounds``           ``ROUNDS``          rounds to run; unset: no limit
=====================  ==================  =================================
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import secrets
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from vv import Service
from vv import loop as loops

logger = logging.getLogger("heavydrinker")

DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"
DEFAULT_FACTOR = 10
DEFAULT_CONCURRENCY = 32
USERS_PER_ROUND = 5
MACHINES_PER_ROUND = 2
# Caffeine per cup of the machines it creates, in milligrams.
CAFFEINE_RANGE_MG = (20, 200)
# A request that takes longer than this counts as an error with status 0.
REQUEST_TIMEOUT_S = 30.0
# Status recorded for a request that got no HTTP response at all.
NO_RESPONSE = 0
FAILED_ROUND_PAUSE_S = 1.0
LOGGED_FAILURES = 10


@dataclass(frozen=True)
class LoadOptions:
    """Settings of one load run."""

    gateway_url: str = DEFAULT_GATEWAY_URL
    factor: int = DEFAULT_FACTOR
    concurrency: int = DEFAULT_CONCURRENCY
    duration_s: float | None = None
    rounds: int | None = None

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ValueError(f"invalid factor {self.factor}: use 1 or more coffees per user")
        if self.concurrency < 1:
            raise ValueError(f"invalid concurrency {self.concurrency}: use 1 or more requests in flight")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"invalid duration {self.duration_s} s: use a positive number of seconds, or leave it unset")
        if self.rounds is not None and self.rounds < 1:
            raise ValueError(f"invalid rounds {self.rounds}: use 1 or more, or leave it unset")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LoadOptions:
        """Read the options from ``GATEWAY_URL``, ``FACTOR``, ``CONCURRENCY``, ``DURATION_S`` and ``ROUNDS``."""
        env = os.environ if environ is None else environ
        return cls(
            gateway_url=env.get("GATEWAY_URL", DEFAULT_GATEWAY_URL),
            factor=_env_number(env, "FACTOR", int, DEFAULT_FACTOR),
            concurrency=_env_number(env, "CONCURRENCY", int, DEFAULT_CONCURRENCY),
            duration_s=_env_number(env, "DURATION_S", float, None),
            rounds=_env_number(env, "ROUNDS", int, None),
        )


def _env_number(env, name, cast, default):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return cast(raw)
    except ValueError:
        raise ValueError(f"invalid {name}={raw!r}: expected a {cast.__name__}") from None


# --- measuring ---------------------------------------------------------


def percentile_ms(sorted_s: list[float], percent: float) -> float:
    """Return the nearest-rank percentile of sorted durations in seconds, in milliseconds."""
    if not sorted_s:
        return 0.0
    rank = max(1, math.ceil(percent / 100 * len(sorted_s)))
    return round(sorted_s[rank - 1] * 1000, 2)


@dataclass
class Recorder:
    """Latencies and statuses of every request, per route."""

    latencies_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def record(self, route: str, status: int, elapsed_s: float) -> None:
        self.latencies_s[route].append(elapsed_s)
        self.statuses[route][status] += 1

    def report(self, elapsed_s: float) -> dict[str, Any]:
        """Summarize the run: totals, errors by status, and per-route counts and percentiles."""
        routes = {}
        errors: Counter = Counter()
        for route, latencies in sorted(self.latencies_s.items()):
            ordered = sorted(latencies)
            route_errors = {str(status): count for status, count in self.statuses[route].items() if status != 200}
            errors.update(route_errors)
            routes[route] = {
                "requests": len(ordered),
                "ok": self.statuses[route][200],
                "p50_ms": percentile_ms(ordered, 50),
                "p99_ms": percentile_ms(ordered, 99),
                "errors": dict(sorted(route_errors.items())),
            }
        requests = sum(route["requests"] for route in routes.values())
        return {
            "elapsed_s": round(elapsed_s, 3),
            "requests": requests,
            "requests_per_s": round(requests / elapsed_s, 1) if elapsed_s > 0 else 0.0,
            "errors": dict(sorted(errors.items())),
            "routes": routes,
        }


# --- the load ----------------------------------------------------------


class Drinker:
    """Runs rounds of sign-ups and purchases against one gateway."""

    def __init__(self, options: LoadOptions, session: aiohttp.ClientSession) -> None:
        self.options = options
        self.session = session
        self.recorder = Recorder()
        self.user_ids: list[int] = []
        self.machine_ids: list[int] = []
        self.buys_sent = 0
        self.buys_ok = 0
        self.report: dict[str, Any] = {}
        self._failures = 0
        # Seconds spent in the buy phase of rounds; sign-ups (slow, because
        # passwords are hashed) run between these phases and are left out.
        self.buy_phase_s = 0.0
        self._deadline = None if options.duration_s is None else time.monotonic() + options.duration_s

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    async def send(self, route: str, method: str, path: str, body: dict | None = None) -> Any:
        """Send one request, record its status and latency, and return the ``response`` member or None."""
        started = time.perf_counter()
        status, payload = NO_RESPONSE, None
        try:
            async with self.session.request(method, self.options.gateway_url + path, json=body) as response:
                status = response.status
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as exc:
            self._failures += 1
            # A failing gateway fails every request: log the first few, then one in a thousand.
            if self._failures <= LOGGED_FAILURES or self._failures % 1000 == 0:
                logger.warning("heavydrinker %s %s failed (failure %d): status %s, %s",
                               method, path, self._failures, status, str(exc) or type(exc).__name__)
        self.recorder.record(route, status, time.perf_counter() - started)
        if status != 200 or not isinstance(payload, dict):
            return None
        return payload.get("response")

    async def add_user(self) -> None:
        login = "drinker-" + secrets.token_hex(6)
        body = {"login": login, "password": secrets.token_urlsafe(12), "email": f"{login}@example.com"}
        created = await self.send("PUT /user", "PUT", "/user", body)
        if created:
            self.user_ids.append(created["id"])

    async def add_machine(self) -> None:
        body = {"name": "machine-" + secrets.token_hex(6), "caffeine": random.randint(*CAFFEINE_RANGE_MG)}
        created = await self.send("POST /machine", "POST", "/machine", body)
        if created:
            self.machine_ids.append(created["id"])

    async def buy(self) -> None:
        user_id = random.choice(self.user_ids)
        machine_id = random.choice(self.machine_ids)
        self.buys_sent += 1
        bought = await self.send("PUT /coffee/buy", "PUT", f"/coffee/buy/{user_id}/{machine_id}")
        if bought:
            self.buys_ok += 1

    async def _bounded(self, jobs: list) -> None:
        """Run the coroutine functions in ``jobs``, at most ``concurrency`` at once; start none past the deadline."""
        pending = list(reversed(jobs))

        async def worker() -> None:
            while pending and not self._expired():
                await pending.pop()()

        await asyncio.gather(*(worker() for _ in range(min(self.options.concurrency, len(jobs)))))

    async def round(self, number: int) -> int:
        """Run one round and return how many of its requests succeeded."""
        started = time.perf_counter()
        sent_before, ok_before = self.buys_sent, self.buys_ok
        users_before, machines_before = len(self.user_ids), len(self.machine_ids)

        await self._bounded([self.add_user] * USERS_PER_ROUND + [self.add_machine] * MACHINES_PER_ROUND)
        planned = 0
        if self.user_ids and self.machine_ids:
            planned = self.options.factor * len(self.user_ids)
            buys_started = time.perf_counter()
            await self._bounded([self.buy] * planned)
            self.buy_phase_s += time.perf_counter() - buys_started

        elapsed_s = max(time.perf_counter() - started, 1e-9)
        sent = self.buys_sent - sent_before
        bought = self.buys_ok - ok_before
        self._log_round(number, planned, sent, bought, elapsed_s)
        return bought + len(self.user_ids) - users_before + len(self.machine_ids) - machines_before

    def _log_round(self, number: int, planned: int, sent: int, bought: int, elapsed_s: float) -> None:
        line = (
            f"heavydrinker round {number} in {elapsed_s:.2f} s: {len(self.user_ids)} users, "
            f"{len(self.machine_ids)} machines, {sent} buys sent, {bought} ok, {sent - bought} failed "
            f"({bought / elapsed_s:.0f} ok/s)"
        )
        # Only the deadline stops a round before it has sent every planned buy.
        if sent < planned:
            line += f"; cut short by the time limit: {planned - sent} of {planned} planned buys not sent"
        logger.info("%s", line)

    async def run(self) -> dict[str, Any]:
        """Run rounds until the duration or the round count is reached, and return the report."""
        started = time.perf_counter()
        number = 0
        try:
            while not self._expired() and (self.options.rounds is None or number < self.options.rounds):
                number += 1
                if await self.round(number) == 0:
                    # Nothing got through (the gateway is down or failing):
                    # pause so that a run without limits does not spin.
                    logger.warning("heavydrinker round %d: no request succeeded; retrying in %.0f s",
                                   number, FAILED_ROUND_PAUSE_S)
                    await asyncio.sleep(FAILED_ROUND_PAUSE_S)
        finally:
            # The report is kept even when the run is cancelled, so that a
            # stopped service still logs what it did.
            self.report = self._report(number, time.perf_counter() - started)
        return self.report

    def _report(self, rounds: int, elapsed_s: float) -> dict[str, Any]:
        report = self.recorder.report(elapsed_s)
        report.update(
            rounds=rounds,
            users=len(self.user_ids),
            machines=len(self.machine_ids),
            buys_ok=self.buys_ok,
            buys_per_s=round(self.buys_ok / elapsed_s, 1) if elapsed_s > 0 else 0.0,
            buy_phase_s=round(self.buy_phase_s, 3),
            buys_per_buy_phase_s=round(self.buys_ok / self.buy_phase_s, 1) if self.buy_phase_s > 0 else 0.0,
            user_ids=self.user_ids,
        )
        return report


def open_session(options: LoadOptions) -> aiohttp.ClientSession:
    """Open a client session whose connection pool matches the concurrency."""
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


async def run_load(options: LoadOptions) -> dict[str, Any]:
    """Run the load described by ``options`` and return the report."""
    async with open_session(options) as session:
        return await Drinker(options, session).run()


def format_report(report: dict[str, Any]) -> str:
    """Render the report as a few lines of text."""
    lines = [
        f"requests: {report['requests']} in {report['elapsed_s']} s ({report['requests_per_s']}/s), "
        f"{report['rounds']} rounds, {report['users']} users, {report['machines']} machines, "
        f"{report['buys_ok']} buys ok ({report['buys_per_s']}/s overall, "
        f"{report['buys_per_buy_phase_s']}/s during the {report['buy_phase_s']} s of buy phases)",
        "errors by status: " + (", ".join(f"{status}: {count}" for status, count in report["errors"].items()) or "none"),
    ]
    for route, figures in report["routes"].items():
        lines.append(
            f"  {route:<16} {figures['requests']:>7} requests  p50 {figures['p50_ms']:>7.2f} ms  p99 {figures['p99_ms']:>7.2f} ms"
        )
    return "\n".join(lines)


# --- as a component ----------------------------------------------------


class Heavydrinker(Service):
    """Runs the load against the gateway while the service runs, with settings from the environment."""

    async def start(self) -> None:
        self._options = LoadOptions.from_env()
        self._load = asyncio.create_task(self._run())

    async def _run(self) -> None:
        logger.info("heavydrinker started against %s with %s", self._options.gateway_url, self._options)
        async with open_session(self._options) as session:
            drinker = Drinker(self._options, session)
            try:
                await drinker.run()
            finally:
                logger.info("heavydrinker report:\n%s", format_report(drinker.report))

    async def stop(self) -> None:
        self._load.cancel()
        try:
            await self._load
        except asyncio.CancelledError:
            logger.info("heavydrinker stopped before the end of its load")
        except Exception:
            logger.exception("heavydrinker failed")


# --- as a program ------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[LoadOptions, str | None]:
    """Build the options and the JSON report path from the command line, with the environment as defaults."""
    defaults = LoadOptions.from_env()
    parser = argparse.ArgumentParser(prog="heavydrinker", description="Put load on the caffeine-manager gateway.")
    parser.add_argument("--gateway", default=defaults.gateway_url, help="base URL of the gateway (GATEWAY_URL)")
    parser.add_argument("--factor", type=int, default=defaults.factor, help="coffees per user in each round (FACTOR)")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="maximum requests in flight (CONCURRENCY)")
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="seconds to run (DURATION_S); default: no limit")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="rounds to run (ROUNDS); default: no limit")
    parser.add_argument("--json", dest="json_path", help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    options = LoadOptions(args.gateway.rstrip("/"), args.factor, args.concurrency, args.duration, args.rounds)
    return options, args.json_path


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        options, json_path = parse_args(argv)
    except ValueError as exc:
        print(f"heavydrinker: {exc}", file=sys.stderr)
        return 2

    # uvloop when installed: the load generator should spend less CPU than the stack it measures.
    loops.install("auto")
    report = asyncio.run(run_load(options))
    print(format_report(report))
    if json_path:
        with open(json_path, "w") as file:
            json.dump(report, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
