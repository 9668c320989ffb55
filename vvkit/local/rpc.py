"""A ``vv.Client`` for the CLI and the supervisor, closed within a bounded time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

logger = logging.getLogger(__name__)

# NOTE: vv.Client.close() can wait forever: redis-py (8.2) may swallow the
# cancellation of the reply reader's blocking BLPOP, so the reader loops on.
# When close() has not finished after CLOSE_TIMEOUT_S, closing the Redis
# connections makes that BLPOP fail, and the reader then sees its pending
# cancellation and ends. Drop this once the runtime's reader re-checks for
# cancellation on every turn of its loop.
CLOSE_TIMEOUT_S = 0.3
FORCED_CLOSE_TIMEOUT_S = 2.0


@asynccontextmanager
async def open_client(url: str, cluster: bool) -> AsyncIterator:
    """Yield a started ``vv.Client`` for ``url`` and close it on exit without hanging."""
    from vv import Client

    client = Client(url, cluster=cluster)
    await client.start()
    try:
        yield client
    finally:
        await _close(client)


async def _close(client) -> None:
    closing = asyncio.ensure_future(client.close())
    done, _ = await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT_S)
    if done:
        return
    logger.debug("vv.Client did not close within %.1f s; closing its Redis connections", CLOSE_TIMEOUT_S)
    await client.redis.aclose()
    await asyncio.wait({closing}, timeout=FORCED_CLOSE_TIMEOUT_S)
