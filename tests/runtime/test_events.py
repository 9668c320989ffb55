"""Events through a real Redis: delivery, catch-up after downtime, fan-out and retries."""

from __future__ import annotations

import asyncio

import pytest

from vv import Service, rpc, subscribe
from vv.testing import run_service


class Coffee(Service):
    @rpc
    async def brew(self, n: int) -> int:
        await self.emit("coffee", {"n": n})
        return n


class Stats(Service):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: list[dict] = []

    @subscribe("coffee", "coffee")
    async def on_coffee(self, event: dict) -> None:
        self.seen.append(event)

    @rpc
    async def seen_count(self) -> int:
        return len(self.seen)


class Audit(Stats):
    component = "audit"


class Flaky(Service):
    attempts = 0

    @subscribe("coffee", "coffee")
    async def on_coffee(self, event: dict) -> None:
        type(self).attempts += 1
        if type(self).attempts < 2:
            raise RuntimeError("first delivery fails on purpose")


async def wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_feed_runs_handler(redis_url, app_name):
    async with run_service(Stats, app=app_name, transport=redis_url) as svc:
        await svc.feed("coffee", "coffee", {"n": 1})
        await svc.feed("coffee", "other-event", {"n": 2})

        assert svc.service.seen == [{"n": 1}]


async def test_events_emitted_while_down_arrive(redis_url, app_name):
    async with run_service(Coffee, app=app_name, transport=redis_url) as coffee:
        for n in range(5):
            await coffee.call("brew", n)

    async with run_service(Stats, app=app_name, transport=redis_url) as stats:
        await wait_until(lambda: len(stats.service.seen) == 5)

        assert [event["n"] for event in stats.service.seen] == [0, 1, 2, 3, 4]


async def test_two_subscribers_each_get_every_event(redis_url, app_name):
    async with run_service(Stats, app=app_name, transport=redis_url) as stats, \
            run_service(Audit, app=app_name, transport=redis_url) as audit, \
            run_service(Coffee, app=app_name, transport=redis_url) as coffee:
        await asyncio.gather(*(coffee.call("brew", n) for n in range(20)))
        await wait_until(lambda: len(stats.service.seen) == 20 and len(audit.service.seen) == 20)

        assert sorted(e["n"] for e in stats.service.seen) == list(range(20))
        assert sorted(e["n"] for e in audit.service.seen) == list(range(20))


async def test_replicas_share_events(redis_url, app_name):
    async with run_service(Stats, app=app_name, transport=redis_url) as one, \
            run_service(Stats, app=app_name, transport=redis_url) as two, \
            run_service(Coffee, app=app_name, transport=redis_url) as coffee:
        await asyncio.gather(*(coffee.call("brew", n) for n in range(40)))
        await wait_until(lambda: len(one.service.seen) + len(two.service.seen) == 40)
        await asyncio.sleep(0.1)

        assert sorted(e["n"] for e in one.service.seen + two.service.seen) == list(range(40))


async def test_failing_handler_is_retried(redis_url, app_name):
    Flaky.attempts = 0
    async with run_service(Flaky, app=app_name, transport=redis_url, claim_idle_ms=300) as svc:
        await svc.feed("coffee", "coffee", {"n": 1}, timeout=5.0)

    assert Flaky.attempts == 2


def test_subscribe_rejects_empty_names():
    from vv import ConfigError

    with pytest.raises(ConfigError, match="emitting component"):
        subscribe("", "coffee")
