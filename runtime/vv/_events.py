"""Events: the ``subscribe`` decorator, emitting, and decoding event stream entries.

A service appends its events to its own event stream. Every subscribing
service reads that stream through a consumer group named after itself, so
each subscribing service receives each event once, replicas share them, and
events emitted while a subscriber was down wait in the stream for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vv._config import TransportSettings
from vv._errors import ConfigError, TransportError, VVError
from vv._keys import ServiceKeys
from vv._rpc import current_trace, encode_json, split_target
from vv._transport import REDIS_DOWN, Redis, bounded, now_ms

__all__ = ["Event", "MalformedEvent", "SubscribeSpec", "emit", "event_fields", "subscribe"]


@dataclass(frozen=True)
class SubscribeSpec:
    """One subscription: the emitting service (``component`` or ``app.component``) and the event name."""

    source: str
    event: str

    def source_keys(self, app: str) -> ServiceKeys:
        return split_target(self.source, app)


def subscribe(source: str, event: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a coroutine method as the handler of ``event`` emitted by ``source``.

    ``source`` is a component of the same app or ``app.component``. A
    method may carry several ``@subscribe`` lines.
    """
    if not source or not event:
        raise ConfigError(f"@subscribe({source!r}, {event!r}): give both the emitting component and the event")

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        if not asyncio.iscoroutinefunction(method):
            raise ConfigError(f"@subscribe on {method.__qualname__}: the method must be 'async def'")
        if hasattr(method, "__vv_rpc__"):
            raise ConfigError(f"{method.__qualname__} is marked both @rpc and @subscribe: split it in two methods")
        specs = [*getattr(method, "__vv_subscribe__", ()), SubscribeSpec(source, event)]
        method.__vv_subscribe__ = tuple(specs)  # type: ignore[attr-defined]
        return method

    return mark


class MalformedEvent(VVError):
    """An event stream entry lacks fields or contains invalid JSON."""


@dataclass
class Event:
    """A decoded event stream entry."""

    name: str
    payload: Any
    emitted_ms: int | None
    trace: str | None

    @classmethod
    def decode(cls, fields: Mapping[bytes, bytes], max_bytes: int) -> Event:
        size = sum(len(key) + len(value) for key, value in fields.items())
        if size > max_bytes:
            raise MalformedEvent(f"event of {size} bytes exceeds the limit of {max_bytes} bytes")
        name, body = fields.get(b"event"), fields.get(b"body")
        if name is None or body is None:
            raise MalformedEvent("event lacks the 'event' or 'body' field")
        try:
            payload = json.loads(body)
            emitted = fields.get(b"emitted_ms")
            emitted_ms = int(emitted) if emitted else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEvent(f"invalid body or emitted_ms: {exc}") from exc
        trace = fields.get(b"trace")
        return cls(name.decode("utf-8", "replace"), payload, emitted_ms, trace.decode() if trace else None)


def event_fields(event: str, body: str) -> dict[str, str | int]:
    """Return the fields of the event stream entry for ``event`` whose payload is the JSON text ``body``.

    ``emit`` appends these fields. The storage appends its record events with
    them from its own Lua script, so subscribers read both alike.
    """
    return {"event": event, "body": body, "emitted_ms": now_ms(), "trace": current_trace.get() or ""}


async def emit(redis: Redis, keys: ServiceKeys, event: str, payload: Any, settings: TransportSettings) -> str:
    """Append an event to the service's event stream and return its entry id.

    The stream is trimmed approximately to ``settings.max_events_len``, so a
    subscriber that falls further behind misses the oldest events. An event
    trimmed after delivery but before acknowledgement is logged as trimmed
    when it is claimed.
    """
    fields = event_fields(event, encode_json(payload))
    try:
        entry_id = await bounded(redis.xadd(keys.events, fields, maxlen=settings.max_events_len, approximate=True),
                                 settings.socket_timeout_s)
    except REDIS_DOWN as exc:
        raise TransportError(f"cannot emit {event!r} to {keys.events}: {exc}") from exc
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
