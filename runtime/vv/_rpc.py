"""RPC: the ``rpc`` decorator, the wire format of requests and replies, and ``Client``.

A caller appends a request to the target service's request stream and waits
for the reply on its own reply list, which one background task per client
reads and hands to the waiting call by message id. ``runtime/PROTOCOL.md``
describes the fields.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import decimal
import itertools
import json
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors

from vv._config import TransportSettings
from vv._errors import ConfigError, QueueFullError, RequestTimeout, TransportError, VVError, error_from_reply
from vv._keys import ServiceKeys, reply_key
from vv._transport import (
    DOWN_LOG,
    REDIS_DOWN,
    Backoff,
    Outbox,
    Redis,
    bounded,
    cancel_and_wait,
    close_client,
    connect,
    now_ms,
    raise_if_cancelled,
)

__all__ = ["Client", "Request", "RpcSpec", "current_deadline_ms", "encode_json", "rpc", "split_target"]

logger = logging.getLogger(__name__)

# Replies taken from the reply list in one read.
_REPLIES_PER_READ = 1000

HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
PROTOCOL_VERSION = "1"

# Deadline and trace of the request being handled, inherited by calls it makes.
current_deadline_ms: contextvars.ContextVar[int | None] = contextvars.ContextVar("vv_deadline_ms", default=None)
current_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("vv_trace", default=None)

# KEYS[1]: the target's request stream. ARGV[1]: maximum stream length;
# ARGV[2..]: field, value, ... of the request. Returns the new entry id, or
# nil when the stream is full. Acknowledged requests are deleted from the
# stream, so its length counts only unread and pending requests and the cap
# never trims a request that is still waiting.
ENQUEUE_SCRIPT = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
    return false
end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
"""


# --- declaring RPC methods ---------------------------------------------


@dataclass(frozen=True)
class RpcSpec:
    """Exposure of one method: its RPC name and the HTTP methods the gateway may use."""

    name: str
    http: tuple[str, ...] | None

    def accepts(self, http_method: str) -> bool:
        return self.http is not None and http_method.upper() in self.http


def _http_methods(http: str | Iterable[str] | None, name: str) -> tuple[str, ...] | None:
    if http is None:
        return None
    if isinstance(http, bool):
        raise ConfigError(f"@rpc(http={http!r}) on {name}: give the HTTP methods, for example http=['GET']")
    methods = (http,) if isinstance(http, str) else tuple(http)
    methods = tuple(dict.fromkeys(method.upper() for method in methods))
    unknown = [method for method in methods if method not in HTTP_METHODS]
    if unknown or not methods:
        raise ConfigError(f"@rpc(http={http!r}) on {name}: use HTTP methods from {', '.join(HTTP_METHODS)}")
    return methods


def rpc(func: Callable[..., Any] | None = None, *, http: str | Iterable[str] | None = None,
        name: str | None = None) -> Any:
    """Mark a coroutine method of a ``Service`` as callable over RPC.

    ``http`` lists the HTTP methods through which the gateway may reach it;
    None (the default) keeps it internal. Usable bare (``@rpc``) or called.
    """

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        rpc_name = name or method.__name__
        if not asyncio.iscoroutinefunction(method):
            raise ConfigError(f"@rpc on {method.__qualname__}: the method must be 'async def'")
        methods = _http_methods(http, method.__qualname__)
        if methods is not None and rpc_name.startswith("_"):
            raise ConfigError(f"@rpc on {method.__qualname__}: names starting with '_' are internal, drop http=")
        method.__vv_rpc__ = RpcSpec(rpc_name, methods)  # type: ignore[attr-defined]
        return method

    return mark(func) if func is not None else mark


# --- wire format -------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(value: Any) -> str:
    """Serialize to JSON, writing datetimes as ISO 8601 and decimals and UUIDs as strings."""
    return json.dumps(value, default=_json_default, separators=(",", ":"), ensure_ascii=False)


_REQUIRED_FIELDS = (b"id", b"method", b"reply", b"deadline_ms", b"body")


class MalformedRequest(VVError):
    """A request stream entry lacks fields or contains values of the wrong type."""


@dataclass
class Request:
    """A decoded request stream entry."""

    id: str
    method: str
    reply_to: str
    deadline_ms: int
    args: list[Any]
    kwargs: dict[str, Any]
    http_method: str | None = None
    trace: str | None = None

    @classmethod
    def decode(cls, fields: Mapping[bytes, bytes], max_bytes: int) -> Request:
        """Decode and check a stream entry; raise MalformedRequest naming what is wrong."""
        size = sum(map(len, fields)) + sum(map(len, fields.values()))
        if size > max_bytes:
            raise MalformedRequest(f"request of {size} bytes exceeds the limit of {max_bytes} bytes")
        required = [fields.get(name) for name in _REQUIRED_FIELDS]
        if None in required:
            missing = [name.decode() for name, value in zip(_REQUIRED_FIELDS, required, strict=True) if value is None]
            raise MalformedRequest(f"request lacks fields: {', '.join(missing)}")
        message_id, method, reply_to, deadline, body_json = required
        try:
            deadline_ms = int(deadline)
            body = json.loads(body_json.decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedRequest(f"invalid deadline_ms or body: {exc}") from exc
        if not isinstance(body, dict):
            raise MalformedRequest("body must be a JSON object with 'args' (array) and 'kwargs' (object)")
        args, kwargs = body.get("args", []), body.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise MalformedRequest("body must be a JSON object with 'args' (array) and 'kwargs' (object)")
        http_method, trace = fields.get(b"http_method"), fields.get(b"trace")
        return cls(
            id=message_id.decode("utf-8", "replace"),
            method=method.decode("utf-8", "replace"),
            reply_to=reply_to.decode("utf-8", "replace"),
            deadline_ms=deadline_ms,
            args=args,
            kwargs=kwargs,
            http_method=http_method.decode("utf-8", "replace") if http_method else None,
            trace=trace.decode("utf-8", "replace") if trace else None,
        )


def reply_fields(fields: Mapping[bytes, bytes]) -> tuple[str, str] | None:
    """Return (message id, reply key) of a possibly malformed request, if both are there."""
    message_id, reply_to = fields.get(b"id"), fields.get(b"reply")
    if not message_id or not reply_to:
        return None
    return message_id.decode("utf-8", "replace"), reply_to.decode("utf-8", "replace")


def encode_reply(message_id: str, *, result: Any = None, error: dict[str, Any] | None = None) -> str:
    if error is not None:
        return encode_json({"id": message_id, "error": error})
    return encode_json({"id": message_id, "result": result})


def split_target(target: str, default_app: str | None) -> ServiceKeys:
    """Turn ``component``, ``app.component`` or ``app/component`` into the target's keys."""
    for separator in (".", "/"):
        if separator in target:
            app, component = target.split(separator, 1)
            return ServiceKeys(app, component)
    if default_app is None:
        raise ConfigError(f"target {target!r} has no app: write '<app>.{target}'")
    return ServiceKeys(default_app, target)


# --- the client --------------------------------------------------------

_PROTOCOL_VERSION_BYTES = PROTOCOL_VERSION.encode()
# Parsed call targets remembered per client; the cache is cleared when full.
_MAX_CACHED_TARGETS = 1000



class Client:
    """Call services' RPC methods from outside a service (and, inside one, through ``Service.call``).

    Use as an async context manager, or call ``start`` and ``close``. One
    background task reads all replies of this client from its reply list.
    """

    def __init__(
        self,
        transport: str = "redis://127.0.0.1:6379/0",
        *,
        cluster: bool = False,
        app: str | None = None,
        settings: TransportSettings | None = None,
        redis: Redis | None = None,
    ) -> None:
        self.transport = transport
        self.cluster = cluster
        self.app = app
        self.settings = settings or TransportSettings.from_env()
        self.client_id = uuid.uuid4().hex
        self.reply_key = reply_key(self.client_id)
        self._own_redis = redis is None
        self.redis: Redis = redis if redis is not None else connect(transport, cluster=cluster, settings=self.settings,
                                                                    bus=True)
        self._counter = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._outbox = Outbox(self.redis, f"client-{self.client_id[:8]}", timeout_s=self.settings.socket_timeout_s)
        self._reader: asyncio.Task[None] | None = None
        self._script_sha: bytes = b""
        self._targets: dict[str, ServiceKeys] = {}
        self._reply_key_bytes = self.reply_key.encode()
        self._max_queue_len_bytes = str(self.settings.max_queue_len).encode()

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        sha = await bounded(self.redis.script_load(ENQUEUE_SCRIPT), self.settings.socket_timeout_s)
        self._script_sha = sha.encode() if isinstance(sha, str) else sha
        self._outbox.start()
        self._reader = asyncio.create_task(self._read_replies(), name=f"vv-replies-{self.client_id[:8]}")

    async def close(self) -> None:
        await cancel_and_wait(self._reader)
        self._reader = None
        await self._outbox.close()
        for message_id, future in self._waiting.items():
            if not future.done():
                future.set_exception(TransportError(f"client closed before the reply to {message_id} arrived"))
        self._waiting.clear()
        if self._own_redis:
            await close_client(self.redis)

    async def call(
        self,
        target: str,
        method: str,
        *,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        http_method: str | None = None,
    ) -> Any:
        """Call ``method`` on ``target`` and return its result.

        The deadline is ``timeout`` seconds from now (default
        ``settings.default_timeout_s``), shortened to the deadline of the
        request being handled when called from inside a handler. Raises the
        RemoteError subclass the service replied with, RequestTimeout when no
        reply came by the deadline, QueueFullError when the target's stream
        is full, and TransportError when Redis cannot be reached.
        """
        if self._reader is None:
            raise ConfigError("Client.call before start(): use 'async with Client(...)' or await client.start()")
        keys = self._target(target)
        called_ms = now_ms()
        deadline_ms = self._deadline_ms(called_ms, timeout)
        message_id = f"{self.client_id}:{next(self._counter)}"
        fields = self._request_fields(message_id, method, deadline_ms, list(args), dict(kwargs or {}), http_method)

        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        try:
            # The deadline bounds sending too: a request sent from this task
            # waits for Redis to confirm it.
            async with asyncio.timeout(max(0.0, deadline_ms - now_ms()) / 1000):
                await self._send(keys.requests, fields, future)
                return await future
        except TimeoutError:
            raise RequestTimeout(
                f"no reply from {keys.service_id}.{method} before its deadline, "
                f"{(deadline_ms - called_ms) / 1000:.3g} s after the call; the service may still have handled it"
            ) from None
        finally:
            self._waiting.pop(message_id, None)

    def _target(self, target: str) -> ServiceKeys:
        keys = self._targets.get(target)
        if keys is None:
            if len(self._targets) >= _MAX_CACHED_TARGETS:
                self._targets.clear()
            keys = self._targets[target] = split_target(target, self.app)
        return keys

    def _deadline_ms(self, called_ms: int, timeout: float | None) -> int:
        timeout_s = self.settings.default_timeout_s if timeout is None else timeout
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s >= 0):
            raise ValueError(f"invalid timeout {timeout_s!r}: use a finite number of seconds, 0 or more")
        deadline_ms = called_ms + int(timeout_s * 1000)
        inherited_ms = current_deadline_ms.get()
        return min(deadline_ms, inherited_ms) if inherited_ms is not None else deadline_ms

    def _request_fields(self, message_id: str, method: str, deadline_ms: int, args: list[Any],
                        kwargs: dict[str, Any], http_method: str | None) -> list[bytes]:
        # Everything is bytes already: redis-py then skips its per-argument encoding.
        message_id_bytes = message_id.encode()
        trace = current_trace.get()
        fields = [
            b"v", _PROTOCOL_VERSION_BYTES,
            b"id", message_id_bytes,
            b"method", method.encode(),
            b"reply", self._reply_key_bytes,
            b"deadline_ms", str(deadline_ms).encode(),
            b"body", encode_json({"args": args, "kwargs": kwargs}).encode(),
            # The first call of a chain starts the trace with its own message id.
            b"trace", trace.encode() if trace else message_id_bytes,
        ]
        if http_method:
            fields += [b"http_method", http_method.upper().encode()]
        return fields

    async def _send(self, stream: str, fields: list[bytes], future: asyncio.Future[Any]) -> None:
        def sent(result: Any) -> None:
            if future.done():
                return
            if isinstance(result, redis_errors.NoScriptError):
                # Redis restarted and lost its script cache: send the source.
                self._outbox.add(("EVAL", ENQUEUE_SCRIPT, 1, stream, self.settings.max_queue_len, *fields), sent)
            elif result is None:
                future.set_exception(QueueFullError(
                    f"request stream {stream} is full with {self.settings.max_queue_len} waiting requests; "
                    "retry later or start more instances of the service"))
            elif isinstance(result, REDIS_DOWN):
                future.set_exception(TransportError(f"cannot send request to {stream}: {result}"))
            elif isinstance(result, Exception):
                future.set_exception(TransportError(f"Redis rejected the request to {stream}: {result}"))

        command = ("EVALSHA", self._script_sha, 1, stream, self._max_queue_len_bytes, *fields)
        if not await self._outbox.send_alone(command, sent):
            self._outbox.add(command, sent)

    # --- replies -------------------------------------------------------

    async def _read_replies(self) -> None:
        # Redis 6 and later accept a fractional blocking timeout.
        block_s = self.settings.block_ms / 1000
        backoff = Backoff(max_s=self.settings.backoff_max_s)
        multi_pop = True
        while True:
            try:
                if multi_pop:
                    try:
                        replies = await self._pop_many(block_s)
                    except REDIS_DOWN:
                        raise
                    except redis_errors.RedisError as exc:
                        # Redis before 7.0 has no BLMPOP: the server rejects
                        # it, or the cluster client finds it missing from
                        # COMMAND and raises a plain RedisError itself.
                        multi_pop = False
                        logger.info("reply reader %s: BLMPOP failed (%s); reading with BLPOP", self.reply_key, exc)
                        continue
                else:
                    replies = await self._pop_one_then_rest(block_s)
                for reply in replies:
                    self._resolve(reply)
                if replies:
                    # Let the callers resume, and send their next requests,
                    # before this task issues the next blocking read.
                    await asyncio.sleep(0)
                backoff.reset()
            except redis_errors.ResponseError:
                logger.exception("reply reader %s: Redis rejected the read", self.reply_key)
                await backoff.sleep()
            except REDIS_DOWN as exc:
                raise_if_cancelled()
                DOWN_LOG.log(logging.WARNING, "reply reader %s: Redis unreachable (%s); retrying",
                             self.reply_key, exc)
                await backoff.sleep()

    async def _pop_many(self, block_s: float) -> list[bytes]:
        popped = await bounded(self.redis.execute_command("BLMPOP", block_s, 1, self.reply_key, "LEFT",
                                                          "COUNT", _REPLIES_PER_READ), self.settings.socket_timeout_s)
        return popped[1] if popped else []

    async def _pop_one_then_rest(self, block_s: float) -> list[bytes]:
        timeout_s = self.settings.socket_timeout_s
        popped = await bounded(self.redis.blpop([self.reply_key], timeout=block_s), timeout_s)
        if popped is None:
            return []
        rest = await bounded(self.redis.lpop(self.reply_key, _REPLIES_PER_READ), timeout_s) or []
        return [popped[1], *rest]

    def _resolve(self, raw: bytes) -> None:
        try:
            reply = json.loads(raw)
            future = self._waiting.get(reply["id"])
        except (ValueError, KeyError, TypeError):
            logger.warning("reply reader %s: dropping malformed reply %.200r", self.reply_key, raw)
            return
        if future is None or future.done():
            # The call timed out or was cancelled, so no caller waits for this reply.
            return
        if "error" in reply:
            future.set_exception(error_from_reply(reply["error"]))
        else:
            future.set_result(reply.get("result"))

