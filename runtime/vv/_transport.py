"""Redis connections, batched writes and the stream consumer loop.

Every call into ``redis.asyncio`` that the RPC and event code makes goes
through this module. It connects to a single server or a cluster, writes in
pipelines (``Outbox``) and reads a stream through a consumer group
(``StreamConsumer``). The consumer claims idle entries, dead-letters
entries delivered too often, renews entries still being worked on, and
reconnects after Redis restarts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.asyncio.cluster import RedisCluster

from vv._config import TransportSettings
from vv._errors import TransportError
from vv._log import RateLimitedLog

__all__ = [
    "DOWN_LOG",
    "REDIS_DOWN",
    "Backoff",
    "cancel_and_wait",
    "Outbox",
    "Slots",
    "StreamConsumer",
    "bounded",
    "connect",
    "ensure_group",
    "now_ms",
    "raise_if_cancelled",
    "redacted",
    "storage_connections",
    "wait_until_reachable",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "Redis cannot be reached right now": retry after a pause.
REDIS_DOWN: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
    OSError,
)

# A PING that takes longer than this counts as Redis not being reachable.
_PING_TIMEOUT_S = 5.0

# Connections per pool: handlers, blocking readers and the outbox share it.
_MIN_POOL_CONNECTIONS = 128

# One limiter for every "Redis unreachable" line of this process, so that an
# outage costs about one log line per second however many loops notice it.
DOWN_LOG = RateLimitedLog(logger)

# How often each consumer looks for consumers of stopped instances, and how
# long such a consumer must have been silent before it is deleted.
_PRUNE_INTERVAL_S = 60.0
_CONSUMER_MAX_IDLE_MS = 10 * 60 * 1000

# Dead-letter entries keep at most this much of each original field, so a
# huge malformed entry is not copied whole.
_DEAD_LETTER_FIELD_BYTES = 64 * 1024

Redis = aioredis.Redis | RedisCluster


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a client library turned into a connection error.

    redis-py closes the connection when a read is cancelled and may raise
    ConnectionError in place of CancelledError. A retry loop that catches
    connection errors calls this first, so that it does not swallow the cancel.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has finished, cancelling again if needed.

    On Python 3.11 ``asyncio.wait_for`` drops a cancel that arrives just as
    the awaited operation completes, and the task then goes on into its next
    blocking read. redis-py uses ``wait_for`` around socket writes when a
    socket timeout is set, so the cancel is repeated until the task is done.
    """
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if task is not None and not task.cancelled() and task.exception() is not None:
        logger.warning("task %s ended with an error: %s: %s", task.get_name(), type(task.exception()).__name__, task.exception())


def redacted(url: str) -> str:
    """Return ``url`` without its password, for log lines and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def now_ms() -> int:
    """Return wall-clock time in epoch milliseconds, the unit of wire deadlines."""
    return int(time.time() * 1000)


def connect(url: str, *, cluster: bool, settings: TransportSettings, decode: bool = False,
            bus: bool = False, storage: bool = False) -> Redis:
    """Create a client for ``url`` (no I/O happens until the first command).

    With ``bus=True`` the client is for the transport's own commands, and
    with ``storage=True`` for the storage's. Neither has a socket timeout,
    and every command on them runs under ``bounded`` instead. redis-py (8.x
    on Python 3.11) wraps each socket write in ``asyncio.wait_for`` when a
    socket timeout is set. That costs a task and a loop iteration per
    command and can swallow a cancellation, while ``asyncio.timeout`` around
    the whole command gives the same bound for less. Other clients
    (``Service.redis``) keep the socket timeout.
    """
    options: dict[str, Any] = {
        # No retries inside redis-py: the loops here retry with their own
        # backoff and logging, and a retry of a cancelled blocking read would
        # swallow the cancellation.
        "retry": Retry(NoBackoff(), 0),
        "socket_timeout": None if bus or storage else settings.socket_timeout_s,
        "socket_connect_timeout": min(5.0, settings.socket_timeout_s),
        "decode_responses": decode,
    }
    if cluster:
        return RedisCluster.from_url(url, **options)
    if bus:
        # Commands on the bus are bounded by the readers, the outbox and
        # max_concurrency handlers emitting events, so a plain pool of this
        # size is never exhausted.
        pool = aioredis.ConnectionPool.from_url(
            url, max_connections=max(_MIN_POOL_CONNECTIONS, 4 * settings.max_concurrency), **options,
        )
    elif storage:
        # A service's storage keeps its reads in flight below this size and
        # sends its writes on one more connection, so a plain pool, which
        # costs less per command than a blocking one, is never exhausted.
        pool = aioredis.ConnectionPool.from_url(url, max_connections=storage_connections(settings), **options)
    else:
        # A blocking pool makes a burst of concurrent commands wait for a free
        # connection instead of failing with MaxConnectionsError at 100.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max(_MIN_POOL_CONNECTIONS, 2 * settings.max_concurrency),
            timeout=settings.socket_timeout_s, **options,
        )
    return aioredis.Redis(connection_pool=pool)


def storage_connections(settings: TransportSettings) -> int:
    """Return the size of the connection pool of a client made with ``connect(..., storage=True)``."""
    return max(_MIN_POOL_CONNECTIONS, 2 * settings.max_concurrency)


async def bounded(command: Awaitable[T], timeout_s: float) -> T:
    """Await a Redis command on a bus client, raising TimeoutError after ``timeout_s``.

    TimeoutError is an OSError, so the retry loops treat it like a lost
    connection; redis-py closes a connection whose command was cancelled.
    """
    async with asyncio.timeout(timeout_s):
        return await command


async def close_client(client: Redis) -> None:
    """Close a client and its connections, whichever kind it is."""
    if isinstance(client, RedisCluster):
        await client.aclose()
    else:
        await client.aclose(close_connection_pool=True)


class Backoff:
    """Exponential pause with jitter between retries, reset after a success."""

    def __init__(self, first_s: float = 0.05, max_s: float = 2.0) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.attempts = 0

    def reset(self) -> None:
        self.attempts = 0

    async def sleep(self) -> None:
        pause_s = min(self.max_s, self.first_s * 2**self.attempts)
        self.attempts += 1
        await asyncio.sleep(pause_s * random.uniform(0.5, 1.0))


async def wait_until_reachable(client: Redis, address: str, timeout_s: float, max_backoff_s: float = 2.0) -> None:
    """Send PING until Redis replies, retrying with backoff for up to ``timeout_s``."""
    deadline_s = time.monotonic() + timeout_s
    backoff = Backoff(max_s=max_backoff_s)
    while True:
        try:
            await bounded(client.ping(), _PING_TIMEOUT_S)
            return
        except REDIS_DOWN as exc:
            if time.monotonic() >= deadline_s:
                raise TransportError(
                    f"Redis at {address} did not reply within {timeout_s:.0f} s: {exc}; "
                    "check that it runs and that the URI is right"
                ) from exc
            logger.warning("Redis at %s not reachable yet (%s); retrying", address, exc)
            await backoff.sleep()


async def ensure_group(client: Redis, stream: str, group: str, timeout_s: float) -> None:
    """Create ``group`` on ``stream`` from its first entry, creating the stream if needed.

    The group starts at id 0, so a service that starts for the first time,
    or after Redis lost its data, reads entries already in the stream.
    """
    try:
        await bounded(client.xgroup_create(stream, group, id="0", mkstream=True), timeout_s)
    except redis_errors.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class Slots:
    """Handler slots of one instance, shared by all its consumers.

    A semaphore bounds the handlers running at once. ``free`` is the size
    minus the entries accepted but not finished (running or waiting for the
    semaphore), and readers ask Redis for no more than that. When two
    consumers read at once, the surplus waits for the semaphore.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.accepted = 0
        self._semaphore = asyncio.Semaphore(size)
        self._freed = asyncio.Event()

    @property
    def free(self) -> int:
        return self.size - self.accepted

    @property
    def busy(self) -> int:
        return min(self.size, self.accepted)

    async def wait_free(self) -> None:
        while self.free <= 0:
            self._freed.clear()
            await self._freed.wait()

    def accept(self) -> None:
        self.accepted += 1

    def running(self) -> asyncio.Semaphore:
        """Return the semaphore to hold while a handler runs."""
        return self._semaphore

    def finish(self) -> None:
        self.accepted -= 1
        self._freed.set()


ResultCallback = Callable[[Any], None]


class Outbox:
    """Queue of Redis commands sent in pipelines by one background task.

    Commands added while a pipeline is in flight go out together in the
    next one, so under load many replies and acknowledgements share one
    round trip. Acknowledgements of one stream are merged into one XACK
    (and one XDEL) placed after every other command of the batch, so a
    reply or dead letter always reaches Redis before its acknowledgement.
    ``retries`` is how often a batch is sent again when Redis cannot be
    reached; after that each callback receives the error.
    """

    def __init__(self, client: Redis, name: str, *, timeout_s: float, retries: int = 0,
                 max_backoff_s: float = 2.0) -> None:
        self.client = client
        self.name = name
        self.timeout_s = timeout_s
        self.retries = retries
        self._pending: list[tuple[tuple[Any, ...], ResultCallback | None]] = []
        self._acks: dict[tuple[str, str, bool], list[str]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(max_s=max_backoff_s)
        # True while a batch is in flight, sent by the background task or inline.
        self._sending = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"vv-outbox-{self.name}")

    def add(self, command: tuple[Any, ...], callback: ResultCallback | None = None) -> None:
        self._pending.append((command, callback))
        self._idle.clear()
        self._wake.set()

    def ack(self, stream: str, group: str, entry_id: str, *, delete: bool) -> None:
        """Acknowledge an entry, and delete it from the stream when ``delete`` is set."""
        self._acks.setdefault((stream, group, delete), []).append(entry_id)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every command added so far has been sent."""
        if self._task is None or self._task.done():
            return
        await self._idle.wait()

    async def close(self) -> None:
        await self.flush()
        await cancel_and_wait(self._task)

    async def send_now(self) -> None:
        """Send the queue from the calling task when no batch is in flight.

        With light traffic this saves the hop to the background task. Under
        load a batch is usually in flight, so this returns at once and the
        queue goes out as one pipeline after it. A caller that may be
        cancelled must not use this, because the queue can hold other
        callers' commands: see ``send_alone``.
        """
        if not self._sending and self._task is not None:
            await self._flush_once()

    async def send_alone(self, command: tuple[Any, ...], callback: ResultCallback) -> bool:
        """Send one command from the calling task if the outbox is idle; return False if it is not.

        When False, the caller queues the command with ``add``. Only this
        command is sent, so a cancelled caller loses nothing of others.
        """
        if self._sending or self._pending or self._acks or self._task is None:
            return False
        self._sending = True
        self._idle.clear()
        try:
            await self._send([(command, callback)])
        finally:
            self._after_send()
        return True

    async def _flush_once(self) -> None:
        self._sending = True
        try:
            batch = self._take_batch()
            if batch:
                await self._send(batch)
        finally:
            self._after_send()

    def _after_send(self) -> None:
        self._sending = False
        if self._pending or self._acks:
            self._wake.set()
        else:
            self._idle.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # An inline sender wakes this task again when it finishes.
            if not self._sending:
                await self._flush_once()

    def _take_batch(self) -> list[tuple[tuple[Any, ...], ResultCallback | None]]:
        batch, self._pending = self._pending, []
        acks, self._acks = self._acks, {}
        for (stream, group, delete), ids in acks.items():
            batch.append((("XACK", stream, group, *ids), None))
            if delete:
                batch.append((("XDEL", stream, *ids), None))
        return batch

    async def _send(self, batch: list[tuple[tuple[Any, ...], ResultCallback | None]]) -> None:
        for attempt in range(self.retries + 1):
            try:
                results = await self._execute([command for command, _ in batch])
                self._backoff.reset()
                break
            except REDIS_DOWN as exc:
                raise_if_cancelled()
                DOWN_LOG.log(logging.WARNING, "outbox %s: Redis unreachable (%s); %d attempts left",
                             self.name, exc, self.retries - attempt)
                if attempt == self.retries:
                    results = [exc] * len(batch)
                else:
                    await self._backoff.sleep()
        for (command, callback), result in zip(batch, results, strict=True):
            if callback is not None:
                callback(result)
            elif isinstance(result, Exception) and not isinstance(result, REDIS_DOWN):
                # After Redis lost its data, acknowledgements of older entries fail with NOGROUP.
                DOWN_LOG.log(logging.WARNING, "outbox %s: %s failed: %s", self.name, command[0], result)

    async def _execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        if len(commands) == 1:
            # A lone command skips the pipeline machinery, which costs more
            # CPU than the command itself.
            try:
                return [await bounded(self.client.execute_command(*commands[0]), self.timeout_s)]
            except redis_errors.ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return await bounded(pipe.execute(raise_on_error=False), self.timeout_s)


# Called with (entry id, fields, delivery count); returns whether to acknowledge.
EntryHandler = Callable[[str, dict[bytes, bytes], int], Awaitable[bool]]
# Called with (entry id, fields or None when trimmed, reason) before an entry is dead-lettered.
DeadHandler = Callable[[str, dict[bytes, bytes] | None, str], None]


class StreamConsumer:
    """Read one stream through a consumer group and hand entries to a handler.

    ``delete_acked`` deletes entries once acknowledged: request streams use
    it so that their length counts only unread and pending requests.
    """

    def __init__(
        self,
        *,
        client: Redis,
        stream: str,
        group: str,
        consumer: str,
        handle: EntryHandler,
        on_dead: DeadHandler,
        dead_letters: str,
        slots: Slots,
        outbox: Outbox,
        settings: TransportSettings,
        delete_acked: bool,
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handle = handle
        self.on_dead = on_dead
        self.dead_letters = dead_letters
        self.slots = slots
        self.outbox = outbox
        self.settings = settings
        self.delete_acked = delete_acked
        self.in_flight: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._group_ready = False
        self._backoff = Backoff(max_s=settings.backoff_max_s)
        self._reader: asyncio.Task[None] | None = None
        self._claimer: asyncio.Task[None] | None = None

    async def _bounded(self, command: Awaitable[T]) -> T:
        return await bounded(command, self.settings.socket_timeout_s)

    # --- lifecycle -----------------------------------------------------

    async def start(self) -> None:
        await ensure_group(self.client, self.stream, self.group, self.settings.socket_timeout_s)
        self._group_ready = True
        self._reader = asyncio.create_task(self._read_loop(), name=f"vv-read-{self.stream}")
        self._claimer = asyncio.create_task(self._claim_loop(), name=f"vv-claim-{self.stream}")

    async def stop_reading(self) -> None:
        """Stop both loops; entries already handed to handlers keep running."""
        await cancel_and_wait(self._reader)
        await cancel_and_wait(self._claimer)

    async def drain(self, timeout_s: float) -> int:
        """Finish in-flight entries, then handle entries delivered to this consumer but not yet run.

        A read cancelled by ``stop_reading`` may have been delivered by Redis
        without reaching this process. Those entries sit in this consumer's
        pending list and are read back with id 0. Returns how many entries
        were left unfinished when ``timeout_s`` ran out. They stay pending,
        and another instance claims them.
        """
        deadline_s = time.monotonic() + timeout_s
        await self._wait_tasks(deadline_s)
        try:
            reply = await self._bounded(self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"},
                                                               count=self.settings.read_count))
            for entry_id, fields in _entries(reply):
                if entry_id not in self.in_flight:
                    self._dispatch(entry_id, fields, 1)
        except (*REDIS_DOWN, redis_errors.ResponseError) as exc:
            logger.warning("drain of %s: cannot read own pending entries: %s", self.stream, exc)
        await self._wait_tasks(deadline_s)
        return len(self._tasks)

    async def forget(self) -> None:
        """Delete this consumer from the group if it has no pending entries (called last on stop)."""
        try:
            for info in await self._bounded(self.client.xinfo_consumers(self.stream, self.group)):
                if _text(info["name"]) == self.consumer and info["pending"] == 0:
                    await self._bounded(self.client.xgroup_delconsumer(self.stream, self.group, self.consumer))
        except (*REDIS_DOWN, redis_errors.ResponseError) as exc:
            logger.warning("cannot delete consumer %s of %s: %s", self.consumer, self.stream, exc)

    async def _wait_tasks(self, deadline_s: float) -> None:
        remaining_s = deadline_s - time.monotonic()
        if self._tasks and remaining_s > 0:
            await asyncio.wait(set(self._tasks), timeout=remaining_s)

    # --- reading -------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            try:
                await self._read_once()
                if self._backoff.attempts:
                    logger.info("read %s: Redis reachable again after %d failed attempts",
                                self.stream, self._backoff.attempts)
                self._backoff.reset()
            except REDIS_DOWN as exc:
                raise_if_cancelled()
                DOWN_LOG.log(logging.WARNING, "read %s: Redis unreachable (%s); retrying", self.stream, exc)
                await self._backoff.sleep()
            except redis_errors.ResponseError as exc:
                await self._on_response_error(exc)

    async def _read_once(self) -> None:
        if not self._group_ready:
            await ensure_group(self.client, self.stream, self.group, self.settings.socket_timeout_s)
            self._group_ready = True
            logger.info("consumer group %s recreated on %s", self.group, self.stream)
        await self.slots.wait_free()
        count = min(self.settings.read_count, self.slots.free)
        reply = await self._bounded(self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                                           count=count, block=self.settings.block_ms))
        entries = _entries(reply)
        for entry_id, fields in entries:
            self._dispatch(entry_id, fields, 1)
        if entries:
            # Let the new handlers run, and send their replies, before this
            # task spends time issuing the next blocking read.
            await asyncio.sleep(0)

    async def _on_response_error(self, exc: redis_errors.ResponseError) -> None:
        if "NOGROUP" in str(exc):
            # Redis restarted without its data, or someone deleted the stream.
            self._group_ready = False
            DOWN_LOG.log(logging.WARNING, "read %s: consumer group %s missing; recreating it",
                               self.stream, self.group)
            return
        logger.exception("read %s: Redis rejected XREADGROUP", self.stream)
        await self._backoff.sleep()

    def _dispatch(self, entry_id: str, fields: dict[bytes, bytes] | None, deliveries: int) -> None:
        if fields is None:
            self._drop_trimmed(entry_id)
            return
        self.slots.accept()
        self.in_flight[entry_id] = time.monotonic()
        task = asyncio.create_task(self._run_one(entry_id, fields, deliveries))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_one(self, entry_id: str, fields: dict[bytes, bytes], deliveries: int) -> None:
        try:
            async with self.slots.running():
                if await self.handle(entry_id, fields, deliveries):
                    self.ack(entry_id)
        except Exception:
            logger.exception("handler for %s entry %s raised; the entry stays pending", self.stream, entry_id)
        finally:
            self.in_flight.pop(entry_id, None)
            self.slots.finish()
        await self.outbox.send_now()

    def ack(self, entry_id: str) -> None:
        self.outbox.ack(self.stream, self.group, entry_id, delete=self.delete_acked)

    def _drop_trimmed(self, entry_id: str) -> None:
        logger.warning("entry %s of %s was trimmed before it was handled; acknowledging and dropping it",
                       entry_id, self.stream)
        self.ack(entry_id)

    # --- claiming, renewal and dead letters ----------------------------

    async def _claim_loop(self) -> None:
        interval_s = self.settings.claim_idle_ms / 3000
        next_prune_s = time.monotonic() + _PRUNE_INTERVAL_S
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._renew_in_flight()
                await self._claim_idle()
                if time.monotonic() >= next_prune_s:
                    next_prune_s = time.monotonic() + _PRUNE_INTERVAL_S
                    await self._prune_consumers()
            except REDIS_DOWN as exc:
                raise_if_cancelled()
                DOWN_LOG.log(logging.WARNING, "claim %s: Redis unreachable (%s)", self.stream, exc)
            except redis_errors.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    self._group_ready = False
                else:
                    logger.exception("claim %s: Redis rejected a command", self.stream)

    async def _renew_in_flight(self) -> None:
        """Reset the idle time of entries still being handled here, so no other instance claims them.

        XCLAIM with JUSTID does not raise the delivery count.
        """
        older_than_s = time.monotonic() - self.settings.claim_idle_ms / 3000
        ids = [entry_id for entry_id, started_s in self.in_flight.items() if started_s < older_than_s]
        if ids:
            await self._bounded(self.client.xclaim(self.stream, self.group, self.consumer, 0, ids, justid=True))

    async def _claim_idle(self) -> None:
        count = min(self.slots.free, self.settings.read_count)
        if count <= 0:
            return
        pending = await self._bounded(self.client.xpending_range(
            self.stream, self.group, min="-", max="+", count=count, idle=self.settings.claim_idle_ms,
        ))
        pending = [p for p in pending if _text(p["message_id"]) not in self.in_flight]
        dead = [p for p in pending if p["times_delivered"] >= self.settings.max_deliveries]
        retry = [p for p in pending if p["times_delivered"] < self.settings.max_deliveries]
        if dead:
            await self._claim_and_dead_letter(dead)
        if retry:
            await self._claim_and_retry(retry)

    async def _claim(self, pending: list[dict[str, Any]]) -> dict[str, dict[bytes, bytes] | None]:
        ids = [_text(p["message_id"]) for p in pending]
        claimed = await self._bounded(
            self.client.xclaim(self.stream, self.group, self.consumer, self.settings.claim_idle_ms, ids))
        found: dict[str, dict[bytes, bytes] | None] = {_text(i): f for i, f in claimed}
        # Since Redis 7 XCLAIM drops deleted entries from the pending list
        # and leaves them out of its reply; before, it returned them empty.
        return {entry_id: found.get(entry_id) for entry_id in ids}

    async def _prune_consumers(self) -> None:
        """Delete consumers of stopped instances once they hold no pending entries.

        Every process reads under a new consumer name, so without this the
        group's consumer list grows with every restart. A live consumer
        touches Redis at least every ``block_ms``; should one be deleted
        anyway, its next read creates it again.
        """
        for info in await self._bounded(self.client.xinfo_consumers(self.stream, self.group)):
            name = _text(info["name"])
            if name != self.consumer and info["pending"] == 0 and info["idle"] > _CONSUMER_MAX_IDLE_MS:
                await self._bounded(self.client.xgroup_delconsumer(self.stream, self.group, name))
                logger.info("deleted idle consumer %s of group %s on %s", name, self.group, self.stream)

    async def _claim_and_retry(self, pending: list[dict[str, Any]]) -> None:
        claimed = await self._claim(pending)
        deliveries = {_text(p["message_id"]): p["times_delivered"] + 1 for p in pending}
        for entry_id, fields in claimed.items():
            if fields is None:
                self._drop_trimmed(entry_id)
                continue
            logger.warning("claimed %s entry %s idle for over %d ms (delivery %d of %d)", self.stream, entry_id,
                           self.settings.claim_idle_ms, deliveries[entry_id], self.settings.max_deliveries)
            self._dispatch(entry_id, fields, deliveries[entry_id])

    async def _claim_and_dead_letter(self, pending: list[dict[str, Any]]) -> None:
        claimed = await self._claim(pending)
        for entry_id, fields in claimed.items():
            reason = f"not acknowledged after {self.settings.max_deliveries} deliveries"
            self.dead_letter(entry_id, fields, reason)

    def dead_letter(self, entry_id: str, fields: dict[bytes, bytes] | None, reason: str) -> None:
        """Copy an entry to the dead-letter stream, tell ``on_dead``, and acknowledge it."""
        logger.warning("dead-lettering %s entry %s: %s", self.stream, entry_id, reason)
        self.on_dead(entry_id, fields, reason)
        record: dict[Any, Any] = {b"stream": self.stream, b"entry": entry_id, b"reason": reason}
        for name, value in (fields or {}).items():
            if len(value) > _DEAD_LETTER_FIELD_BYTES:
                value = f"<{len(value)} bytes dropped>".encode()
            record[b"field:" + name] = value
        self.outbox.add(("XADD", self.dead_letters, "MAXLEN", "~", self.settings.max_dead_letters_len, "*",
                         *[part for pair in record.items() for part in pair]))
        self.ack(entry_id)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(reply: Any) -> list[tuple[str, dict[bytes, bytes] | None]]:
    """Flatten an XREADGROUP reply into (id, fields) pairs; trimmed entries get None."""
    entries: list[tuple[str, dict[bytes, bytes] | None]] = []
    for _stream, items in reply or []:
        for entry_id, fields in items:
            entries.append((_text(entry_id), fields or None))
    return entries
