"""VLoop: both modes, the trampoline's stack depth, the pass guard."""

from __future__ import annotations

import asyncio
import sys

import pytest

from vv.loop import PassLimitExceeded, VLoop, VLoopError


def stack_depth() -> int:
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def counter(limit: int | None = None):
    """A step that counts its turns and finishes at ``limit``."""

    def step(state, finish, pass_on=None):
        state["turns"] = state.get("turns", 0) + 1
        if limit is not None and state["turns"] >= limit:
            finish()
            return None
        if pass_on is not None:
            return pass_on()

    return step


def test_calling_mode_round_robin():
    order = []

    def step_a(state, finish):
        order.append("a")

    def step_b(state, finish):
        order.append("b")
        if len(order) >= 6:
            finish()

    states = VLoop("calling").add("a", step_a).add("b", step_b).run()

    assert order == ["a", "b", "a", "b", "a", "b"]
    assert list(states) == ["a", "b"]


def test_result_callback_gets_every_state():
    received = []
    vloop = VLoop("calling", on_result=received.append)
    vloop.add("first", counter(), {"turns": 0})
    vloop.add("second", counter(limit=3), {"turns": 0})

    states = vloop.run()

    assert received == [states]
    assert states == {"first": {"turns": 3}, "second": {"turns": 3}}


def test_passing_mode_hands_control_on():
    vloop = VLoop("passing")
    vloop.add("counting", counter(), {"turns": 0})
    vloop.add("finishing", counter(limit=5), {"turns": 0})

    states = vloop.run()

    assert states == {"counting": {"turns": 5}, "finishing": {"turns": 5}}
    assert vloop.turns == 10


def test_passing_mode_constant_stack_depth():
    depths = set()

    def probe(state, finish, pass_on):
        state["turns"] += 1
        if state["turns"] % 100_000 == 0:
            depths.add(stack_depth())
        if state["turns"] == 500_000:
            finish()
            return None
        return pass_on()

    vloop = VLoop("passing")
    vloop.add("other", counter(), {"turns": 0})
    vloop.add("probe", probe, {"turns": 0})
    vloop.run()

    assert vloop.turns == 1_000_000
    assert len(depths) == 1, depths


def test_pass_guard_stops_endless_run():
    vloop = VLoop("passing", max_passes=1000)
    vloop.add("a", counter(), {"turns": 0})
    vloop.add("b", counter(), {"turns": 0})

    with pytest.raises(PassLimitExceeded, match="1000 times") as raised:
        vloop.run()

    assert raised.value.passes == 1000
    assert raised.value.states == {"a": {"turns": 500}, "b": {"turns": 500}}


def test_passing_step_must_pass_or_finish():
    def silent(state, finish, pass_on):
        return None

    vloop = VLoop("passing").add("silent", silent)

    with pytest.raises(VLoopError, match="'silent' returned without calling pass_on"):
        vloop.run()


def test_coroutine_steps_in_both_modes():
    async def sleeper(state, finish, pass_on=None):
        await asyncio.sleep(0.001)
        state["sleeps"] = state.get("sleeps", 0) + 1
        if state["sleeps"] == 3:
            finish()
            return None
        if pass_on is not None:
            return pass_on()

    for mode in ("calling", "passing"):
        states = VLoop(mode).add("plain", counter()).add("async", sleeper).run()
        assert states["async"] == {"sleeps": 3}, mode
        assert states["plain"] == {"turns": 3}, mode


async def test_run_async_lets_other_tasks_run():
    ticks = []

    async def ticker():
        while True:
            ticks.append(1)
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    await VLoop("calling").add("count", counter(limit=10_000)).run_async()
    task.cancel()

    assert len(ticks) >= 5


def test_invalid_configuration():
    with pytest.raises(VLoopError, match="invalid VLoop mode 'jumping'"):
        VLoop("jumping")
    with pytest.raises(VLoopError, match="invalid max_passes 0"):
        VLoop("passing", max_passes=0)
    with pytest.raises(VLoopError, match="duplicate VLoop step name 'a'"):
        VLoop().add("a", counter()).add("a", counter())
    with pytest.raises(VLoopError, match="no steps"):
        VLoop().run()
