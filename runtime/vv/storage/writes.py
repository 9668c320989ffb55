"""Writes that finish even when their caller is cancelled.

A write commits in PostgreSQL and then updates Redis. If the caller's task
were cancelled between the two (a caller's timeout, a gateway client that
went away), PostgreSQL would have the change while Redis kept the old copy,
and reads would return that copy until it expired. A cancellation can even
arrive while asyncpg reads the reply of a statement that has already
committed. So each write runs in a task of its own, and the caller waits for
it through ``asyncio.shield``: a cancelled caller stops waiting, and the
write still finishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["WriteTasks"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WriteTasks:
    """The running writes of one storage; ``wait`` lets them finish before the storage closes."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    async def run(self, write: Coroutine[Any, Any, T]) -> T:
        """Run ``write`` to completion in its own task and return its result.

        Cancelling the caller does not cancel the write. The write's error,
        if the caller is no longer waiting for it, is logged.
        """
        task = asyncio.create_task(write)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_log_failure_without_caller)
            raise

    async def wait(self) -> None:
        """Wait until every write started so far has finished."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def _log_failure_without_caller(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.warning("storage write failed after its caller was cancelled: %r", error)
