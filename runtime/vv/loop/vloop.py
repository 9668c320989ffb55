"""VLoop: a cooperative round-robin scheduler of named steps.

A step is a function (plain or ``async def``) that receives its own state and
a ``finish`` callable. The loop calls the step at the head of the queue and
then rotates it to the back. When a step calls ``finish()``, the loop stops
after that step returns and hands every step's name and state to the result
callback.

Two modes:

- ``calling``: the loop calls each step in turn, ``step(state, finish)``.
- ``passing``: each step hands control to the next itself, through the
  continuation it receives: ``step(state, finish, pass_on)`` ends with
  ``return pass_on()``. ``pass_on()`` does not call the next step but returns
  a token. A trampoline in the loop calls the next step once this one has
  returned, so the stack depth stays the same however long the run is. A
  step that returns without calling ``pass_on`` or ``finish`` is an error,
  and ``max_passes`` stops a run that never finishes.

States are mutable objects that the steps change in place (a dict unless
given). Coroutine steps are awaited before the next step runs.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Callable
from typing import Any

from vv._errors import VVError

MODES = ("calling", "passing")

# Default pass limit in passing mode: ten times the 1,000,000 passes that the
# tests run. At the rate of those tests (about a million plain-function passes
# per second on a 2-core AMD EPYC) a run that never finishes stops in about
# ten seconds.
DEFAULT_MAX_PASSES = 10_000_000


# Plain-function steps never wait, so a VLoop would starve other tasks on
# the same asyncio loop. Yielding to the loop once every this many turns
# lets them run.
TURNS_PER_YIELD = 1000


class VLoopError(VVError):
    """A VLoop was misconfigured or a step broke the passing protocol."""


class PassLimitExceeded(VLoopError):
    """A passing-mode run reached ``max_passes`` without any step finishing."""

    def __init__(self, passes: int, states: dict[str, Any]) -> None:
        super().__init__(
            f"VLoop passed control {passes} times without any step calling finish: "
            "check that some step finishes, or raise max_passes"
        )
        self.passes = passes
        self.states = states


class _Step:
    __slots__ = ("name", "function", "state")

    def __init__(self, name: str, function: Callable, state: Any) -> None:
        self.name = name
        self.function = function
        self.state = state


class _Pass:
    """The token a passing-mode step returns to hand control to the next step."""

    __slots__ = ()


_PASS = _Pass()


class VLoop:
    """Runs named steps round robin until one of them calls ``finish``."""

    def __init__(
        self,
        mode: str = "calling",
        *,
        on_result: Callable[[dict[str, Any]], Any] | None = None,
        max_passes: int | None = DEFAULT_MAX_PASSES,
    ) -> None:
        if mode not in MODES:
            raise VLoopError(f"invalid VLoop mode {mode!r}: use 'calling' or 'passing'")
        if max_passes is not None and max_passes < 1:
            raise VLoopError(f"invalid max_passes {max_passes}: use a positive number, or None for no limit")

        self.mode = mode
        self.on_result = on_result
        self.max_passes = max_passes
        self.turns = 0
        self._steps: deque[_Step] = deque()
        self._order: dict[str, int] = {}
        self._finished = False
        self._passed = False

    def add(self, name: str, step: Callable, state: Any = None) -> VLoop:
        """Queue ``step`` under ``name`` with its own ``state`` (a new dict by default)."""
        if name in self._order:
            raise VLoopError(f"duplicate VLoop step name {name!r}: give each step its own name")
        self._order[name] = len(self._order)
        self._steps.append(_Step(name, step, {} if state is None else state))
        return self

    def states(self) -> dict[str, Any]:
        """Return each step's name and state, in the order the steps were added."""
        ordered = sorted(self._steps, key=lambda step: self._order[step.name])
        return {step.name: step.state for step in ordered}

    def run(self, loop_name: str | None = "auto") -> dict[str, Any]:
        """Run to the end on a new asyncio loop chosen by ``loop_name``; return the states."""
        from ._select import new_event_loop

        loop = new_event_loop(loop_name)
        try:
            return loop.run_until_complete(self.run_async())
        finally:
            loop.close()

    async def run_async(self) -> dict[str, Any]:
        """Run to the end inside the running asyncio loop; return the states."""
        if not self._steps:
            raise VLoopError("VLoop has no steps: add at least one with add(name, step)")
        self._finished = False
        self.turns = 0

        if self.mode == "calling":
            await self._run_calling()
        else:
            await self._run_passing()

        states = self.states()
        if self.on_result is not None:
            outcome = self.on_result(states)
            if inspect.isawaitable(outcome):
                await outcome
        return states

    def _finish(self) -> None:
        self._finished = True

    def _pass_on(self) -> _Pass:
        self._passed = True
        return _PASS

    async def _run_calling(self) -> None:
        steps = self._steps
        finish = self._finish
        while not self._finished:
            step = steps[0]
            outcome = step.function(step.state, finish)
            if inspect.isawaitable(outcome):
                await outcome
            steps.rotate(-1)
            self.turns += 1
            if self.turns % TURNS_PER_YIELD == 0:
                await asyncio.sleep(0)

    async def _run_passing(self) -> None:
        # The trampoline: each iteration calls one step and, when it passed
        # control on, moves to the next. Steps never call each other, so
        # Python's stack does not grow with the number of passes.
        steps = self._steps
        finish = self._finish
        pass_on = self._pass_on
        while True:
            step = steps[0]
            self._passed = False
            outcome = step.function(step.state, finish, pass_on)
            if inspect.isawaitable(outcome):
                await outcome
            self.turns += 1
            if self._finished:
                return

            self._check_passed(step)
            steps.rotate(-1)
            if self.turns % TURNS_PER_YIELD == 0:
                await asyncio.sleep(0)

    def _check_passed(self, step: _Step) -> None:
        if not self._passed:
            raise VLoopError(
                f"VLoop step {step.name!r} returned without calling pass_on() or finish(): "
                "end a passing-mode step with 'return pass_on()'"
            )
        if self.max_passes is not None and self.turns >= self.max_passes:
            raise PassLimitExceeded(self.turns, self.states())
