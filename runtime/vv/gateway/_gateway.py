"""``Gateway``: the service that serves the HTTP gateway of its app.

The ``api`` component of an app subclasses it (an empty class body is
enough). At start it opens an RPC client on the service's Redis connection
and an aiohttp server on ``HTTP_HOST:HTTP_PORT``. At stop it closes the
server first, so no request arrives after the client is gone.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from aiohttp import web

from vv._errors import ConfigError, NotFound, TransportError
from vv._keys import ServiceKeys
from vv._rpc import Client
from vv._service import Service
from vv._transport import REDIS_DOWN
from vv.gateway._server import DEFAULT_TIMEOUT_S, build_app

__all__ = ["Gateway"]

logger = logging.getLogger(__name__)

DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
# A component found running is trusted for this long before its request
# stream is looked up again. Unknown ones are looked up on every request, so
# a service that starts is reachable at once.
KNOWN_COMPONENT_TTL_S = 10.0


def _env_number(name: str, cast: type, default: Any) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return cast(raw)
    except ValueError:
        raise ConfigError(f"invalid {name}={raw!r}: expected a {cast.__name__}") from None


class Gateway(Service):
    """Serves ``/<component>/<method words>/<ids>`` over HTTP by calling RPCs of its own app.

    Settings come from the environment: ``HTTP_HOST`` (default 127.0.0.1;
    the component's image sets 0.0.0.0), ``HTTP_PORT`` (default 8080; 0
    picks a free port, see ``http_port``) and ``HTTP_TIMEOUT_S``, the
    deadline of each RPC (default 10).
    """

    http_port: int | None = None

    async def start(self) -> None:
        self.http_host = os.environ.get("HTTP_HOST", DEFAULT_HTTP_HOST)
        port = _env_number("HTTP_PORT", int, DEFAULT_HTTP_PORT)
        timeout_s = _env_number("HTTP_TIMEOUT_S", float, DEFAULT_TIMEOUT_S)
        self._known: dict[str, float] = {}

        self._client = Client(redis=self.redis, app=self.app)
        await self._client.start()
        app = build_app(self._call, self._list_components, timeout_s=timeout_s)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.http_host, port)
        await site.start()
        self.http_port = self._runner.addresses[0][1]
        logger.info("gateway %s listening on http://%s:%d (RPC timeout %.3g s)",
                    self.service_id, self.http_host, self.http_port, timeout_s)

    async def stop(self) -> None:
        await self._runner.cleanup()
        await self._client.close()
        logger.info("gateway %s stopped listening", self.service_id)

    async def _call(self, component: str, method: str, args: list[Any], kwargs: dict[str, Any], *,
                    timeout_s: float, http_method: str | None) -> Any:
        await self._check_running(component)
        return await self._client.call(component, method, args=args, kwargs=kwargs, timeout=timeout_s,
                                       http_method=http_method)

    async def _check_running(self, component: str) -> None:
        """Raise NotFound for a component that never started: its request stream does not exist.

        Without this check a request for an unknown name would create that
        stream and wait the whole timeout for a reply that cannot come.
        """
        now_s = time.monotonic()
        if self._known.get(component, 0.0) > now_s:
            return
        if component == self.component:
            raise NotFound(f"unknown service {component!r} in app {self.app!r}")
        try:
            exists = await self.redis.exists(ServiceKeys(self.app, component).requests)
        except REDIS_DOWN as exc:
            raise TransportError(f"cannot look up service {component!r}: {exc}") from exc
        if not exists:
            raise NotFound(f"unknown service {component!r} in app {self.app!r}")
        self._known[component] = now_s + KNOWN_COMPONENT_TTL_S

    async def _list_components(self) -> list[str]:
        """Return the components of this app that have a request stream, except the gateway itself."""
        pattern = ServiceKeys(self.app, "*").requests
        found = set()
        try:
            async for key in self.redis.scan_iter(match=pattern, count=1000):
                text = key.decode() if isinstance(key, bytes) else key
                found.add(text.split("{", 1)[1].split("}", 1)[0].split(".", 1)[1])
        except REDIS_DOWN as exc:
            raise TransportError(f"cannot list the services of app {self.app!r}: {exc}") from exc
        found.discard(self.component)
        return sorted(found)
