"""Stats counts coffees bought while it was stopped, once it runs again."""

from __future__ import annotations

import asyncio
import time

from tests.caffeine.conftest import load_service_class, start_stack
from vv.testing import run_service

DRAIN_TIMEOUT_S = 15.0


async def counts(stack) -> tuple[int, int]:
    _, coffee = await stack.request("GET", "/coffee/count")
    _, counted = await stack.request("GET", "/stats/coffee/count")
    return coffee["response"]["count"], counted["response"]["count"]


async def wait_counted(stack, expected: int) -> tuple[int, int]:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        stored, counted = await counts(stack)
        if counted >= expected or time.monotonic() > deadline:
            return stored, counted
        await asyncio.sleep(0.05)


async def buy_coffees(stack, user_id: int, machine_id: int, count: int) -> None:
    for _ in range(count):
        status, body = await stack.request("PUT", f"/coffee/buy/{user_id}/{machine_id}")
        assert status == 200, body


async def test_stats_counts_coffees_bought_while_down(app_name, redis_url, databases, gateway_env, monkeypatch):
    monkeypatch.setenv("HTTP_TIMEOUT_S", "1")
    stats_class = load_service_class("stats")
    async with start_stack(app_name, redis_url, databases, components=("user", "machine", "coffee")) as stack:
        _, user = await stack.request("PUT", "/user", json={"login": "ann", "password": "pw", "email": "ann@example.com"})
        _, machine = await stack.request("POST", "/machine", json={"name": "M1", "caffeine": 40})
        user_id, machine_id = user["response"]["id"], machine["response"]["id"]

        async with run_service(stats_class, app=app_name, transport=redis_url, database=databases["stats"]):
            await buy_coffees(stack, user_id, machine_id, 3)
            assert await wait_counted(stack, 3) == (3, 3)

        # Stats is stopped: these purchases wait in the coffee service's event stream.
        await buy_coffees(stack, user_id, machine_id, 5)
        # Its request stream exists, so the gateway waits for a reply until the RPC deadline.
        status, body = await stack.request("GET", "/stats/coffee/count")
        assert status == 504
        assert body["error_text"].startswith(f"no reply from {app_name}.stats.coffee_count before its deadline")

        async with run_service(stats_class, app=app_name, transport=redis_url, database=databases["stats"]):
            assert await wait_counted(stack, 8) == (8, 8)
            _, by_user = await stack.request("GET", f"/stats/coffee/user/{user_id}")

    assert by_user["response"]["count"] == 8


async def test_stats_counts_repeated_event_once(app_name, redis_url, databases, gateway_env):
    stats_class = load_service_class("stats")
    coffee = {"id": 41, "user_id": 1, "login": "ann", "machine_id": 2, "machine_name": "M1",
              "caffeine": 40.0, "bought_at": "2026-01-31T08:15:00+00:00"}

    async with run_service(stats_class, app=app_name, transport=redis_url, database=databases["stats"]) as stats:
        await stats.feed("coffee", "coffee.added", coffee)
        await stats.feed("coffee", "coffee.added", coffee)
        counted = await stats.call("coffee_count")
        by_user = await stats.call("coffee_user", 1)

    assert counted == {"count": 1}
    assert by_user["count"] == 1
    assert by_user["result"] == [coffee]
