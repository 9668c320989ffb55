"""The aiohttp application that turns HTTP requests into RPCs.

Every path except ``/health`` goes through one handler: parse the route,
read the query and body, call the RPC with the HTTP method attached, and
wrap the result or the error in the envelope. The serving side checks that
the method is reachable over HTTP and accepts the HTTP method, so the
gateway needs no table of routes and cannot reach internal methods.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from vv._errors import NotFound, RemoteError, TransportError
from vv._service import no_http_endpoint_text
from vv.gateway._envelope import error_body, success_body
from vv.gateway._routes import Route, merge_kwargs, parse_body, parse_path, parse_query

__all__ = ["DEFAULT_HEALTH_TIMEOUT_S", "DEFAULT_TIMEOUT_S", "RpcCaller", "build_app"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
# A service that needs longer than this to return its health RPC is
# reported as unhealthy.
DEFAULT_HEALTH_TIMEOUT_S = 2.0
# Bodies above this size are rejected with 413 before they are parsed.
MAX_BODY_BYTES = 1024 * 1024

HEALTH_PATH = "/health"


class RpcCaller(Protocol):
    """Sends one RPC to a component of the gateway's app and returns its result."""

    async def __call__(
        self,
        component: str,
        method: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        timeout_s: float,
        http_method: str | None,
    ) -> Any: ...


ComponentLister = Callable[[], Awaitable[list[str]]]


def build_app(
    call: RpcCaller,
    list_components: ComponentLister,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S,
) -> web.Application:
    """Build the gateway's application around an RPC caller.

    ``list_components`` returns the components whose health ``GET /health``
    reports; the gateway's own component is expected to be left out.
    """
    handlers = _Handlers(call, list_components, timeout_s, health_timeout_s)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_route("GET", HEALTH_PATH, handlers.health)
    app.router.add_route("*", "/{path:.*}", handlers.rpc)
    return app


def _json_response(body: dict[str, Any], status: int) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":"), default=str),
        status=status,
        content_type="application/json",
    )


def _error_response(error: RemoteError) -> web.Response:
    return _json_response(error_body(error), error.code)


class _Handlers:
    def __init__(
        self,
        call: RpcCaller,
        list_components: ComponentLister,
        timeout_s: float,
        health_timeout_s: float,
    ) -> None:
        self._call = call
        self._list_components = list_components
        self._timeout_s = timeout_s
        self._health_timeout_s = health_timeout_s

    async def rpc(self, request: web.Request) -> web.Response:
        """Serve every path except ``/health`` by calling the RPC it names."""
        try:
            route = parse_path(request.path)
            kwargs = await self._read_kwargs(request)
        except RemoteError as exc:
            return _error_response(exc)

        try:
            result = await self._call(
                route.service, route.method, route.args, kwargs, timeout_s=self._timeout_s, http_method=request.method
            )
        except NotFound as exc:
            # The service's text names the RPC; the client only knows the route it requested.
            if exc.text == no_http_endpoint_text(request.method, route.method):
                exc = NotFound(f"no HTTP endpoint {request.method} {request.path}")
            return _error_response(exc)
        except RemoteError as exc:
            return _error_response(exc)
        except TransportError as exc:
            logger.warning("gateway %s %s: transport failed: %s", request.method, request.path, exc)
            return _error_response(RemoteError(f"service unavailable: {exc}", code=503))
        except Exception:
            logger.exception("gateway %s %s: unexpected error calling %s",
                             request.method, request.path, _describe(route))
            return _error_response(RemoteError("internal error in the gateway; see its log"))

        return _json_response(success_body(result), 200)

    async def _read_kwargs(self, request: web.Request) -> dict[str, Any]:
        query = parse_query(request.query.items())
        if not request.body_exists:
            return query
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise RemoteError(f"request body too large: the limit is {MAX_BODY_BYTES} bytes", code=413) from None
        return merge_kwargs(query, parse_body(body))

    async def health(self, request: web.Request) -> web.Response:
        """Report the ``health`` RPC of every component; 503 when any fails."""
        try:
            components = await self._list_components()
        except TransportError as exc:
            logger.warning("gateway GET %s: transport failed: %s", HEALTH_PATH, exc)
            return _error_response(RemoteError(f"service unavailable: {exc}", code=503))
        results = await asyncio.gather(*(self._check(component) for component in components))
        report = dict(zip(components, results, strict=True))

        failing = [
            f"{name} ({result['error_code']}: {result['error_text']})"
            for name, result in report.items()
            if result["status"] != "ok"
        ]
        if failing:
            return _error_response(RemoteError("unhealthy: " + "; ".join(failing), code=503))
        return _json_response(success_body({"status": "ok", "services": report}), 200)

    async def _check(self, component: str) -> dict[str, Any]:
        try:
            reply = await self._call(component, "health", [], {}, timeout_s=self._health_timeout_s, http_method=None)
        except RemoteError as exc:
            return {"status": "error", "error_code": exc.code, "error_text": exc.text}
        except TransportError as exc:
            return {"status": "error", "error_code": 503, "error_text": str(exc)}
        if not isinstance(reply, dict) or reply.get("status") != "ok":
            return {"status": "error", "error_code": 500, "error_text": f"unexpected health reply {reply!r}"}
        return reply


def _describe(route: Route) -> str:
    return f"{route.service}.{route.method}{tuple(route.args)}"
