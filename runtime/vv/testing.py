"""Run a service inside a test, against a real Redis.

::

    from vv.testing import run_service

    async def test_request(redis_url, database_url):
        async with run_service(Machine, app="shop", transport=redis_url, database=database_url) as svc:
            assert await svc.call("request", name="M1", caffeine=40) == {"id": 1}
            await svc.feed("coffee", "coffee", {"id": 1})   # returns once the handler ran

Calls go through Redis exactly as in production, so a test exercises the
wire format, argument binding and error mapping too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from vv._config import TransportSettings
from vv._errors import RequestTimeout
from vv._events import emit
from vv._rpc import Client, split_target
from vv._service import Service, ServiceRunner
from vv._transport import redacted, wait_until_reachable

__all__ = ["ServiceHandle", "run_service"]

_POLL_INTERVAL_S = 0.01


class ServiceHandle:
    """A running service in a test: call its RPCs and feed it events."""

    def __init__(self, service: Service, runner: ServiceRunner, client: Client) -> None:
        self.service = service
        self.runner = runner
        self.client = client

    async def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call one of the service's RPC methods through Redis."""
        return await self.client.call(self.service.service_id, method, args=args, kwargs=kwargs, timeout=timeout)

    async def feed(self, source: str, event: str, payload: Any, timeout: float = 10.0) -> str:
        """Emit ``event`` as ``source`` would, and wait until this service has handled it.

        ``source`` is a component of the service's app or ``app.component``.
        Raises RequestTimeout when the event is still unacknowledged after
        ``timeout`` seconds (for example because its handler keeps raising).
        """
        keys = split_target(source, self.service.app)
        entry_id = await emit(self.runner.bus, keys, event, payload, self.service.settings)
        await self._wait_acknowledged(keys.events, entry_id, timeout)
        return entry_id

    async def _wait_acknowledged(self, stream: str, entry_id: str, timeout_s: float) -> None:
        group = self.service.keys.group
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            groups = {g["name"]: g for g in await self.runner.bus.xinfo_groups(stream)}
            info = groups.get(group.encode()) or groups.get(group)
            if info is not None and _id_at_least(info["last-delivered-id"], entry_id):
                pending = await self.runner.bus.xpending_range(stream, group, min=entry_id, max=entry_id, count=1)
                if not pending:
                    return
            await asyncio.sleep(_POLL_INTERVAL_S)
        raise RequestTimeout(f"event {entry_id} on {stream} was not handled by {self.service.service_id} "
                             f"within {timeout_s} s")


def _id_at_least(current: bytes | str, wanted: str) -> bool:
    text = current.decode() if isinstance(current, bytes) else current
    return tuple(map(int, text.split("-"))) >= tuple(map(int, wanted.split("-")))


@asynccontextmanager
async def run_service(
    service_class: type[Service],
    *,
    app: str,
    transport: str = "redis://127.0.0.1:6379/0",
    database: str | None = None,
    cluster: bool = False,
    component: str | None = None,
    settings: TransportSettings | None = None,
    **setting_overrides: Any,
) -> AsyncIterator[ServiceHandle]:
    """Start ``service_class`` in this event loop and stop it, drained, on exit.

    ``setting_overrides`` replace single transport settings, for example
    ``claim_idle_ms=500`` to see claims quickly in a test.
    """
    if settings is None:
        settings = TransportSettings.from_env(**setting_overrides)
    service = service_class(app=app, component=component, transport=transport, cluster=cluster,
                            database=database, settings=settings)
    runner = ServiceRunner(service)
    await wait_until_reachable(runner.bus, redacted(transport), timeout_s=10.0)
    await runner.start()
    try:
        async with Client(transport, cluster=cluster, app=app, settings=settings) as client:
            yield ServiceHandle(service, runner, client)
    finally:
        await runner.drain(timeout_s=10.0)
