"""The ``Service`` base class and the runner that serves its RPCs and events.

A component subclasses ``Service`` and marks methods with ``@rpc`` and
``@subscribe``. ``ServiceRunner`` connects the instance to Redis, reads its
request stream and the event streams it subscribes to, and drains on stop.
Lifecycle: created → starting → running → draining → stopped.
"""

from __future__ import annotations

import enum
import inspect
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from vv._arguments import ArgumentChecker
from vv._config import TransportSettings
from vv._errors import (
    ConfigError,
    DeadLettered,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RemoteError,
)
from vv._events import Event, MalformedEvent, SubscribeSpec, emit
from vv._keys import ServiceKeys
from vv._rpc import (
    Client,
    MalformedRequest,
    Request,
    RpcSpec,
    current_deadline_ms,
    current_trace,
    encode_reply,
    reply_fields,
    rpc,
)
from vv._transport import Outbox, Slots, StreamConsumer, close_client, connect, now_ms, storage_connections

__all__ = ["Service", "ServiceRunner", "State", "class_component_name", "no_http_endpoint_text", "validate_name"]

logger = logging.getLogger(__name__)

# Reply lists whose expiry time is remembered; past this the memory is
# cleared, which only costs one extra EXPIRE per list.
_MAX_TRACKED_REPLY_KEYS = 10_000

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def validate_name(kind: str, name: str) -> str:
    """Check an app or component name against the DNS label rule."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"invalid {kind} name {name!r}: use lowercase letters, digits and '-', "
            "starting with a letter, at most 63 characters"
        )
    return name


def no_http_endpoint_text(http_method: str, method: str) -> str:
    """Return the 404 text for an HTTP request naming a method that is absent or not reachable over HTTP.

    Both cases get the same text, so an HTTP client cannot tell an internal
    method from a missing one. The gateway compares a 404 against this text
    to tell it from a 404 raised by a handler, such as an unknown record.
    """
    return f"no HTTP endpoint {http_method.upper()} for RPC {method!r}"


def class_component_name(cls: type) -> str:
    """Return the component name of a class: its ``component`` attribute or its name in kebab case."""
    declared = getattr(cls, "component", None)
    if isinstance(declared, str):
        return declared
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", cls.__name__).lower()


class State(enum.Enum):
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


class Service:
    """Base class of every vvkit service; one subclass per component.

    Inside handlers: ``self.app``, ``self.component``, ``self.service_id``,
    ``self.redis`` (a ``redis.asyncio`` client with decoded responses, or a
    ``RedisCluster``), ``self.logger``, ``self.call``, ``self.emit`` and,
    when the service has storage, ``self.storage`` and its shortcuts.
    """

    component: ClassVar[str | None] = None
    entity: ClassVar[Any] = None

    _vv_rpcs: ClassVar[dict[str, tuple[RpcSpec, str]]] = {}
    _vv_subscriptions: ClassVar[tuple[tuple[SubscribeSpec, str], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        rpcs: dict[str, tuple[RpcSpec, str]] = {}
        subscriptions: list[tuple[SubscribeSpec, str]] = []
        for attribute in dir(cls):
            member = getattr(cls, attribute, None)
            spec = getattr(member, "__vv_rpc__", None)
            if isinstance(spec, RpcSpec):
                if spec.name in rpcs:
                    raise ConfigError(f"{cls.__name__}: two methods are exposed as RPC {spec.name!r}")
                rpcs[spec.name] = (spec, attribute)
            for subscription in getattr(member, "__vv_subscribe__", ()):
                subscriptions.append((subscription, attribute))
        if "health" not in rpcs:
            raise ConfigError(f"{cls.__name__}.health overrides the built-in health RPC: mark it @rpc as well")
        cls._vv_rpcs = rpcs
        cls._vv_subscriptions = tuple(subscriptions)

    def __init__(
        self,
        *,
        app: str,
        component: str | None = None,
        transport: str = "redis://127.0.0.1:6379/0",
        cluster: bool = False,
        database: str | None = None,
        settings: TransportSettings | None = None,
    ) -> None:
        self.app = validate_name("app", app)
        self.component = validate_name("component", component or class_component_name(type(self)))
        self.keys = ServiceKeys(self.app, self.component)
        self.service_id = self.keys.service_id
        self.transport = transport
        self.cluster = cluster
        self.database = database
        self.settings = settings or TransportSettings.from_env()
        self.logger = logging.getLogger(f"vv.service.{self.service_id}")
        self.redis = connect(transport, cluster=cluster, settings=self.settings, decode=True)
        self.storage: Any = None
        self.lifecycle = State.CREATED
        self._vv_runner: ServiceRunner | None = None

    # --- hooks ---------------------------------------------------------

    async def start(self) -> None:
        """Run once after connecting and before the first request is read."""

    async def stop(self) -> None:
        """Run once after in-flight work drained, before connections close."""

    # --- calls and events ----------------------------------------------

    async def call(self, target: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``method`` of ``target`` (a component of this app or ``app.component``).

        Inside a handler the call inherits what is left of the current
        request's deadline when that is shorter than ``timeout``.
        """
        return await self._runner("call").client.call(target, method, args=args, kwargs=kwargs, timeout=timeout)

    async def emit(self, event: str, payload: Any) -> str:
        """Append ``event`` with a JSON-serializable ``payload`` to this service's event stream."""
        runner = self._runner("emit")
        return await emit(runner.bus, self.keys, event, payload, self.settings)

    def _runner(self, action: str) -> ServiceRunner:
        if self._vv_runner is None or self.lifecycle in (State.CREATED, State.STOPPED):
            raise ConfigError(
                f"{self.service_id}: cannot {action} while the service is {self.lifecycle.value}; "
                "run it with vv-start or vv.testing.run_service"
            )
        return self._vv_runner

    # --- storage shortcuts ---------------------------------------------

    def _storage(self) -> Any:
        if self.storage is None:
            raise ConfigError(f"{self.service_id} has no storage: declare 'entity' on the class or set a database")
        return self.storage

    @property
    def records(self) -> Any:
        return self._storage().records

    @property
    def state(self) -> Any:
        return self._storage().state

    def list(self, name: str) -> Any:
        return self._storage().list(name)

    def records_of(self, component: str) -> Any:
        return self._storage().records_of(component)

    # --- built-in RPCs -------------------------------------------------

    @rpc
    async def health(self) -> dict[str, Any]:
        """Report that this instance runs, with its id and load."""
        runner = self._vv_runner
        return {
            "status": "ok",
            "service": self.service_id,
            "instance": runner.consumer if runner else None,
            "state": self.lifecycle.value,
            "in_flight": runner.slots.busy if runner else 0,
            "uptime_s": round(time.monotonic() - runner.started_s, 3) if runner else 0,
        }

    @rpc(name="_record_get")
    async def _vv_record_get(self, id: Any) -> Any:  # noqa: A002 - the wire argument is named id
        """Read one of this service's records for another service whose Redis copy missed."""
        if self.storage is None:
            raise NotFound(f"{self.service_id} has no storage, so no records")
        return await self.storage.records.get(id)


def _consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class ServiceRunner:
    """Serve one ``Service`` instance: read its streams, run handlers, reply and drain."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.settings = service.settings
        self.consumer = _consumer_name()
        self.bus = connect(service.transport, cluster=service.cluster, settings=self.settings, bus=True)
        self.client = Client(service.transport, cluster=service.cluster, app=service.app,
                             settings=self.settings, redis=self.bus)
        # Replies and acknowledgements are retried a few times when Redis is
        # briefly unreachable; a reply lost after that ends in the caller's timeout.
        self.outbox = Outbox(self.bus, service.service_id, timeout_s=self.settings.socket_timeout_s, retries=3,
                             max_backoff_s=self.settings.backoff_max_s)
        self.slots = Slots(self.settings.max_concurrency)
        self.consumers: list[StreamConsumer] = []
        self.started_s = time.monotonic()
        self._checkers: dict[str, ArgumentChecker] = {}
        self._reply_ttl_set_s: dict[str, float] = {}
        self._requests: StreamConsumer | None = None
        self.storage_redis: Any = None

    # --- lifecycle -----------------------------------------------------

    async def start(self) -> None:
        service = self.service
        if service.lifecycle is not State.CREATED:
            raise ConfigError(f"{service.service_id} was already started (state {service.lifecycle.value})")
        service.lifecycle = State.STARTING
        service._vv_runner = self
        try:
            await self._start_parts(service)
        except BaseException:
            # Stop the background tasks and close the connections opened so far.
            for consumer in self.consumers:
                await consumer.stop_reading()
            await self.outbox.close()
            await self._close(service)
            raise
        service.lifecycle = State.RUNNING
        self.started_s = time.monotonic()
        logger.info("service %s started: instance %s, %d RPC methods, %d subscriptions", service.service_id,
                    self.consumer, len(service._vv_rpcs), len(service._vv_subscriptions))

    async def _start_parts(self, service: Service) -> None:
        await self.client.start()
        self.outbox.start()
        await self._open_storage()
        await service.start()

        self.consumers = [self._request_consumer(), *self._event_consumers()]
        for consumer in self.consumers:
            await consumer.start()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Stop reading, finish in-flight work within ``timeout_s``, acknowledge it and close.

        Entries still running when the time is up stay pending in Redis, so
        another instance claims them after the claim idle time.
        """
        service = self.service
        if service.lifecycle in (State.DRAINING, State.STOPPED):
            return
        service.lifecycle = State.DRAINING
        for consumer in self.consumers:
            await consumer.stop_reading()
        deadline_s = time.monotonic() + timeout_s
        unfinished = 0
        for consumer in self.consumers:
            unfinished += await consumer.drain(max(0.0, deadline_s - time.monotonic()))
        await self.outbox.close()
        for consumer in self.consumers:
            await consumer.forget()
        logger.info("service %s drained: %d entries left unfinished for other instances",
                    service.service_id, unfinished)

        try:
            await service.stop()
        finally:
            await self._close(service)
        logger.info("service %s stopped", service.service_id)

    async def _close(self, service: Service) -> None:
        if service.storage is not None:
            await service.storage.close()
        if self.storage_redis is not None:
            await close_client(self.storage_redis)
        await self.client.close()
        await close_client(self.bus)
        await close_client(service.redis)
        service.lifecycle = State.STOPPED

    async def _open_storage(self) -> None:
        service = self.service
        if service.entity is None and not service.database:
            return
        try:
            from vv.storage import open_storage
        except ImportError as exc:
            logger.warning("service %s declares storage but vv.storage is not available: %s",
                           service.service_id, exc)
            return
        # The storage bounds each of its commands itself, so its client has no socket timeout.
        self.storage_redis = connect(service.transport, cluster=service.cluster, settings=self.settings, storage=True)
        try:
            service.storage = await open_storage(
                service.keys, self.storage_redis, service.database, service,
                redis_timeout_s=self.settings.socket_timeout_s,
                redis_max_reads=storage_connections(self.settings) - 1,
            )
        except BaseException:
            await close_client(self.storage_redis)
            self.storage_redis = None
            raise

    # --- consumers -----------------------------------------------------

    def _consumer(self, stream: str, handle: Callable[..., Any], on_dead: Callable[..., Any],
                  delete_acked: bool) -> StreamConsumer:
        return StreamConsumer(
            client=self.bus, stream=stream, group=self.service.keys.group, consumer=self.consumer,
            handle=handle, on_dead=on_dead, dead_letters=self.service.keys.dead_letters, slots=self.slots,
            outbox=self.outbox, settings=self.settings, delete_acked=delete_acked,
        )

    def _request_consumer(self) -> StreamConsumer:
        self._requests = self._consumer(self.service.keys.requests, self._handle_request,
                                        self._on_dead_request, delete_acked=True)
        return self._requests

    def _event_consumers(self) -> list[StreamConsumer]:
        by_stream: dict[str, dict[str, list[str]]] = {}
        for spec, attribute in self.service._vv_subscriptions:
            stream = spec.source_keys(self.service.app).events
            by_stream.setdefault(stream, {}).setdefault(spec.event, []).append(attribute)
        return [
            self._consumer(stream, self._event_handler(stream, handlers), self._on_dead_event, delete_acked=False)
            for stream, handlers in by_stream.items()
        ]

    # --- requests ------------------------------------------------------

    async def _handle_request(self, entry_id: str, fields: dict[bytes, bytes], deliveries: int) -> bool:
        try:
            request = Request.decode(fields, self.settings.max_request_bytes)
        except MalformedRequest as exc:
            requests = self._requests
            if requests is not None:  # always set before the first read
                requests.dead_letter(entry_id, fields, f"malformed request: {exc}")
            address = reply_fields(fields)
            if address is not None:
                self._reply(*address, error=InvalidRequest(f"malformed request: {exc}").to_reply())
            return False  # dead_letter acknowledged it already

        late_ms = now_ms() - request.deadline_ms
        if late_ms > 0:
            logger.warning("request %s %s.%s expired %d ms before it was handled; dropped",
                           request.id, self.service.service_id, request.method, late_ms)
            return True

        current_deadline_ms.set(request.deadline_ms)
        current_trace.set(request.trace)
        try:
            result = await self._run_method(request)
            self._reply(request.id, request.reply_to, result=result)
        except RemoteError as exc:
            self._reply(request.id, request.reply_to, error=exc.to_reply())
        return True

    async def _run_method(self, request: Request) -> Any:
        method, spec = self._find_method(request)
        bound = self._bind(method, spec, request)
        try:
            return await method(*bound.args, **bound.kwargs)
        except RemoteError:
            raise
        except Exception as exc:
            logger.exception("request %s %s.%s raised", request.id, self.service.service_id, request.method)
            raise RemoteError(f"{self.service.service_id}.{request.method} failed: "
                              f"{type(exc).__name__}: {exc}") from exc

    def _find_method(self, request: Request) -> tuple[Callable[..., Any], RpcSpec]:
        service = self.service
        found = service._vv_rpcs.get(request.method)
        # A method the gateway may not reach looks absent to it, like an unknown one.
        if request.http_method and (found is None or found[0].http is None):
            raise NotFound(no_http_endpoint_text(request.http_method, request.method))
        if found is None:
            raise NotFound(f"no RPC method {request.method!r} on service {service.service_id}")
        spec, attribute = found
        if request.http_method and not spec.accepts(request.http_method):
            raise MethodNotAllowed(
                f"HTTP method {request.http_method} not allowed for {service.service_id}.{request.method}: "
                f"use {', '.join(spec.http or ())}"
            )
        return getattr(service, attribute), spec

    def _bind(self, method: Callable[..., Any], spec: RpcSpec, request: Request) -> inspect.BoundArguments:
        checker = self._checkers.get(spec.name)
        if checker is None:
            checker = self._checkers[spec.name] = ArgumentChecker(method, f"{self.service.service_id}.{spec.name}")
        # Query values reach the gateway as text, so HTTP requests may carry numbers and booleans as text.
        return checker.bind(request.args, request.kwargs, from_text=bool(request.http_method))

    def _reply(self, message_id: str, reply_to: str, *, result: Any = None,
               error: dict[str, Any] | None = None) -> None:
        try:
            body = encode_reply(message_id, result=result, error=error)
        except (TypeError, ValueError) as exc:
            logger.error("request %s: result is not JSON serializable: %s", message_id, exc)
            body = encode_reply(message_id, error={"code": 500, "text": f"result is not JSON serializable: {exc}"})
        self.outbox.add(("RPUSH", reply_to, body.encode()))
        self._refresh_reply_ttl(reply_to)

    def _refresh_reply_ttl(self, reply_to: str) -> None:
        """Set the expiry of a reply list, at most once per half TTL per list.

        The TTL only removes lists whose reader is gone, so renewing it on
        every reply would add a command per call for nothing.
        """
        now_s = time.monotonic()
        if now_s - self._reply_ttl_set_s.get(reply_to, float("-inf")) < self.settings.reply_ttl_s / 2:
            return
        if len(self._reply_ttl_set_s) >= _MAX_TRACKED_REPLY_KEYS:
            self._reply_ttl_set_s.clear()
        self._reply_ttl_set_s[reply_to] = now_s
        self.outbox.add(("EXPIRE", reply_to, self.settings.reply_ttl_s))

    def _on_dead_request(self, entry_id: str, fields: dict[bytes, bytes] | None, reason: str) -> None:
        address = reply_fields(fields or {})
        if address is not None and not reason.startswith("malformed"):
            error = DeadLettered(f"request {address[0]} to {self.service.service_id} was dead-lettered: {reason}")
            self._reply(*address, error=error.to_reply())

    # --- events --------------------------------------------------------

    def _event_handler(self, stream: str, handlers: dict[str, list[str]]) -> Callable[..., Any]:
        async def handle(entry_id: str, fields: dict[bytes, bytes], deliveries: int) -> bool:
            try:
                event = Event.decode(fields, self.settings.max_request_bytes)
            except MalformedEvent as exc:
                consumer = next(c for c in self.consumers if c.stream == stream)
                consumer.dead_letter(entry_id, fields, f"malformed event: {exc}")
                return False
            current_trace.set(event.trace)
            for attribute in handlers.get(event.name, ()):
                try:
                    await getattr(self.service, attribute)(event.payload)
                except Exception:
                    logger.exception("event %s %s from %s: handler %s raised (delivery %d of %d); will retry",
                                     entry_id, event.name, stream, attribute, deliveries, self.settings.max_deliveries)
                    return False
            return True

        return handle

    def _on_dead_event(self, entry_id: str, fields: dict[bytes, bytes] | None, reason: str) -> None:
        """Do nothing more: no caller waits for an event, so the dead-letter entry and its log line suffice."""

