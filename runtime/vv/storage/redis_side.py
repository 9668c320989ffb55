"""The hot copies in Redis: versioned cells, unique indexes and list copies.

A cell is a hash with two fields. ``v`` is the version that PostgreSQL gave
the row; it comes from the sequence ``vv_versions``, so it only grows, even
across a delete and a re-create. ``d`` is the JSON text of the value, or
``""`` when the row was deleted (a tombstone). Writers commit to PostgreSQL first
and then write the cell with the version PostgreSQL returned; the scripts
below keep the copy with the higher version. That settles two races:
two writers whose Redis steps arrive out of commit order, and a reader that
fetched a row from PostgreSQL just before a writer changed or deleted it and
refills Redis after the writer did.

Every key one script touches carries the same service hash tag, so each
script runs on one Redis Cluster slot.

Write scripts go out through an ``Outbox``: a write sent while another is in
flight waits and leaves with the other waiting writes in one pipeline, so
under load many writes share a round trip. Every command runs under
``asyncio.timeout`` rather than a socket timeout (see ``vv._transport.connect``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.exceptions

from vv._errors import TransportError
from vv._transport import REDIS_DOWN, Outbox, bounded

T = TypeVar("T")

logger = logging.getLogger(__name__)

__all__ = ["EventStream", "HotStore", "TOMBSTONE_TTL_MS"]

# A tombstone only has to outlive read-throughs that started before the
# delete; an operation gives up on PostgreSQL after 1.5 s.
TOMBSTONE_TTL_MS = 60_000
TOMBSTONE = ""

# Bound of one Redis command of the storage when the caller gives none; a
# service passes its transport's socket_timeout_s.
DEFAULT_COMMAND_TIMEOUT_S = 15.0

# KEYS[1]: cell hash.
# ARGV[1]: version; ARGV[2]: value text, "" for a tombstone; ARGV[3]: TTL in ms, 0 for none.
# Returns 1 if written, 0 if the cell already has this or a newer version.
_WRITE_CELL = """
local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if current >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return 1
"""

# Lua function shared by the record scripts. KEYS[1]: record cell hash;
# KEYS[first_index..]: unique index hashes, one per unique field.
# ARGV[1]: version; ARGV[2]: record text, "" for a tombstone; ARGV[3]: TTL in ms, 0 for none;
# ARGV[4]: record id. Then come two items for unique field j (0-based): ARGV[5+2j] is the
# comparison key the row had before this write, ARGV[6+2j] the key it has now ("" for none).
# Returns 1 if written, 0 if Redis already has this or a newer version; a stale
# write changes neither the cell nor the indexes.
_RECORD_FUNCTION = """
local function write_record(first_index)
  local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
  if current >= tonumber(ARGV[1]) then return 0 end
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
  local ttl = tonumber(ARGV[3])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
  for i = first_index, #KEYS do
    local old = ARGV[5 + 2 * (i - first_index)]
    local new = ARGV[6 + 2 * (i - first_index)]
    if old ~= '' and old ~= new and redis.call('HGET', KEYS[i], old) == ARGV[4] then
      redis.call('HDEL', KEYS[i], old)
    end
    if new ~= '' then redis.call('HSET', KEYS[i], new, ARGV[4]) end
  end
  return 1
end
"""

# KEYS and ARGV as for write_record, with the unique index hashes from KEYS[2].
_WRITE_RECORD = _RECORD_FUNCTION + "return write_record(2)\n"

# KEYS[1]: record cell hash; KEYS[2]: the service's event stream; KEYS[3..]: unique
# index hashes. ARGV as for write_record, followed by the stream's approximate
# maximum length and the event entry's field names and values. The event is
# appended even when the record write is stale, because every committed change
# has its event. Returns what write_record returns.
_WRITE_RECORD_AND_EMIT = _RECORD_FUNCTION + """
local written = write_record(3)
local last = 4 + 2 * (#KEYS - 2)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[last + 1], '*', unpack(ARGV, last + 2))
return written
"""

# KEYS[1]: sorted set of a list's items, scored by position; member "<position>:<value text>".
# ARGV: pairs of position and value text, then the TTL in ms (0 for none) as the last item.
# The member at score 0 marks a copy loaded in full from PostgreSQL; positions start at 1.
_ADD_ITEMS = """
for i = 1, #ARGV - 1, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i] .. ':' .. ARGV[i + 1])
end
local ttl = tonumber(ARGV[#ARGV])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""

# KEYS[1]: sorted set of a list's items. ARGV[1], ARGV[2]: first and last rank (Redis
# ZRANGE rules, negative from the end), counted without the marker. ARGV[3]: TTL in
# ms to restart, 0 for none. Returns false when the copy is not complete, else the
# members in the range.
_READ_ITEMS = """
if not redis.call('ZSCORE', KEYS[1], '0:') then return false end
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
local first = tonumber(ARGV[1])
local last = tonumber(ARGV[2])
if first >= 0 then first = first + 1 end
if last >= 0 then last = last + 1 end
local count = redis.call('ZCARD', KEYS[1]) - 1
if first < 0 then first = math.max(count + first + 1, 1) end
if last < 0 then last = count + last + 1 end
if last < first then return {} end
return redis.call('ZRANGE', KEYS[1], first, last)
"""

# KEYS[1]: sorted set of a list's items. Returns -1 when the copy is not
# complete, else the number of items.
_COUNT_ITEMS = """
if not redis.call('ZSCORE', KEYS[1], '0:') then return -1 end
return redis.call('ZCARD', KEYS[1]) - 1
"""

LIST_MARKER_POSITION = 0


@dataclass(frozen=True)
class EventStream:
    """A service's event stream that the record scripts append record events to, and its approximate maximum length."""

    key: str
    max_len: int


def ttl_ms(ttl_s: float | None) -> int:
    return 0 if ttl_s is None else max(1, round(ttl_s * 1000))


async def _with_one_retry(command: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``command``, once more after a dropped connection; map Redis trouble to TransportError.

    Only reads and read scripts use this, so running one twice has no
    effect. A Redis restart drops every pooled connection, so the first
    command on each would fail without the retry.
    """
    try:
        return await command()
    except redis.exceptions.ConnectionError:
        pass
    except (redis.exceptions.TimeoutError, TimeoutError) as exc:
        raise TransportError(f"Redis timed out on {what}: {exc!r}") from exc
    try:
        return await command()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, TimeoutError) as exc:
        raise TransportError(f"Redis failed on {what}: {exc!r}") from exc


class HotStore:
    """The Redis calls of the storage, with the scripts registered once.

    ``redis`` should be a client without a socket timeout: every command
    here is bounded by ``timeout_s`` instead. With ``max_reads`` at most that
    many reads wait for Redis at once, and the rest wait for a turn. Writes
    use one connection at a time, for the outbox's batch in flight.
    ``close`` sends the writes still waiting in the outbox.
    """

    def __init__(self, redis: Any, timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S, max_reads: int | None = None) -> None:
        self.redis = redis
        self.timeout_s = timeout_s
        self._read_slots = None if max_reads is None else asyncio.Semaphore(max_reads)
        self._write_cell = redis.register_script(_WRITE_CELL)
        self._write_record = redis.register_script(_WRITE_RECORD)
        self._write_record_and_emit = redis.register_script(_WRITE_RECORD_AND_EMIT)
        self._add_items = redis.register_script(_ADD_ITEMS)
        self._read_items = redis.register_script(_READ_ITEMS)
        self._count_items = redis.register_script(_COUNT_ITEMS)
        # Started on the first write, inside the running event loop.
        self._writes: Outbox | None = None

    async def close(self) -> None:
        if self._writes is not None:
            await self._writes.close()
            self._writes = None

    async def read_cell(self, key: str, ttl_s: float | None = None) -> tuple[bool, str | bytes | None]:
        """Return (hit, value text); a tombstone is a hit with None.

        With ``ttl_s`` the read also restarts the copy's TTL, in the same
        round trip, so copies that are read stay hot.
        """
        if ttl_s is None:
            text = await self._read(lambda: self.redis.hget(key, "d"), f"HGET {key}")
        else:
            text = await self._read(lambda: self._read_and_touch(key, ttl_s), f"HGET {key}")
        if text is None:
            return False, None
        if text in (b"", ""):
            return True, None
        return True, text

    async def _read_and_touch(self, key: str, ttl_s: float) -> str | bytes | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(key, "d")
            pipe.pexpire(key, ttl_ms(ttl_s))
            text, _ = await pipe.execute()
        return text

    async def write_cell(self, key: str, version: int, text: str, ttl_s: float | None) -> bool:
        ttl = TOMBSTONE_TTL_MS if text == TOMBSTONE else ttl_ms(ttl_s)
        written = await self._run_write(self._write_cell, [key], [version, text, ttl], f"write {key}")
        return bool(written)

    async def write_record(
        self,
        key: str,
        record_id: int,
        version: int,
        text: str,
        ttl_s: float | None,
        indexes: list[tuple[str, str | None, str | None]],
    ) -> bool:
        """Write a record cell and move its unique index entries; ``indexes`` lists (index key, old, new)."""
        args = _record_args(record_id, version, text, ttl_s, indexes)
        keys = [key, *(index for index, _, _ in indexes)]
        written = await self._run_write(self._write_record, keys, args, f"write {key}")
        return bool(written)

    async def write_record_and_emit(
        self,
        key: str,
        record_id: int,
        version: int,
        text: str,
        ttl_s: float | None,
        indexes: list[tuple[str, str | None, str | None]],
        events: EventStream,
        fields: Mapping[str, str | int],
    ) -> bool:
        """Do what ``write_record`` does and append an entry with ``fields`` to ``events``, in one script.

        The event is appended even when the record write is stale. If the
        reply is lost after the script ran, the retry appends the event a
        second time, so subscribers may see it twice.
        """
        args = _record_args(record_id, version, text, ttl_s, indexes)
        args.append(events.max_len)
        for name, value in fields.items():
            args += [name, value]
        keys = [key, events.key, *(index for index, _, _ in indexes)]
        written = await self._run_write(self._write_record_and_emit, keys, args, f"write {key}")
        return bool(written)

    async def lookup_unique(self, index_key: str, comparison_key: str) -> int | None:
        found = await self._read(lambda: self.redis.hget(index_key, comparison_key), f"HGET {index_key}")
        return None if found is None else int(found)

    async def add_items(self, key: str, items: list[tuple[int, str]], ttl_s: float | None) -> None:
        args: list[Any] = []
        for position, text in items:
            args += [position, text]
        await self._run_write(self._add_items, [key], [*args, ttl_ms(ttl_s)], f"add to {key}")

    async def read_items(self, key: str, first: int, last: int, ttl_s: float | None) -> list[str] | None:
        """Return the item texts in the rank range, or None when the copy is incomplete; restart the TTL."""
        args = [first, last, ttl_ms(ttl_s)]
        members = await self._read(lambda: self._read_items(keys=[key], args=args), f"read {key}")
        if members is None:
            return None
        return [_member_text(member) for member in members]

    async def count_items(self, key: str) -> int | None:
        count = await self._read(lambda: self._count_items(keys=[key], args=[]), f"count {key}")
        return None if count < 0 else count

    async def _read(self, command: Callable[[], Awaitable[T]], what: str) -> T:
        if self._read_slots is None:
            return await _with_one_retry(lambda: bounded(command(), self.timeout_s), what)
        async with self._read_slots:
            return await _with_one_retry(lambda: bounded(command(), self.timeout_s), what)

    async def _run_write(self, script: Any, keys: list[str], args: list[Any], what: str) -> Any:
        """Run a write script through the outbox and return its result; raise TransportError if Redis fails.

        The outbox sends a batch once more after a dropped connection. Every
        write script may run twice: it writes only versions newer than the
        stored one, or adds set members that are already there. The one
        exception is the event that ``write_record_and_emit`` appends.
        """
        result = await self._send(
            ("EVALSHA", script.sha, len(keys), *keys, *args),
            ("EVAL", script.script, len(keys), *keys, *args),
        )
        if isinstance(result, REDIS_DOWN):
            raise TransportError(f"Redis failed on {what}: {result!r}") from result
        if isinstance(result, Exception):
            raise result
        return result

    async def _send(self, command: tuple[Any, ...], without_cache: tuple[Any, ...]) -> Any:
        """Send ``command`` through the outbox and return its result, or the exception it ended with.

        When no batch is in flight the calling task sends it at once.
        Otherwise it joins the next batch. If Redis no longer has the script
        (after a restart or SCRIPT FLUSH), ``without_cache`` goes out in the
        next batch: EVAL runs the script and caches it for later EVALSHA
        calls. A command that waits for a batch is sent even after its
        caller is cancelled, but a cancel stops one that the calling task
        sends itself. So writes that must land run in tasks of their own
        (``vv.storage.writes``).
        """
        outbox = self._outbox()
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        # A cancelled caller's ``reply`` is cancelled too, so check the
        # result before the future.
        def settle(result: Any) -> None:
            if isinstance(result, redis.exceptions.NoScriptError):
                outbox.add(without_cache, settle_final)
            else:
                settle_final(result)

        def settle_final(result: Any) -> None:
            if not reply.done():
                reply.set_result(result)
            elif isinstance(result, Exception):
                logger.warning("storage write %s failed after its caller was cancelled: %r", command[3], result)

        if not await outbox.send_alone(command, settle):
            outbox.add(command, settle)
        return await reply

    def _outbox(self) -> Outbox:
        if self._writes is None:
            self._writes = Outbox(self.redis, "storage", timeout_s=self.timeout_s, retries=1)
            self._writes.start()
        return self._writes


def _record_args(
    record_id: int, version: int, text: str, ttl_s: float | None, indexes: list[tuple[str, str | None, str | None]]
) -> list[Any]:
    """Return the ARGV of ``write_record`` in the Lua scripts."""
    ttl = TOMBSTONE_TTL_MS if text == TOMBSTONE else ttl_ms(ttl_s)
    args: list[Any] = [version, text, ttl, record_id]
    for _, old, new in indexes:
        args += [old or "", new or ""]
    return args


def _member_text(member: str | bytes) -> str:
    if isinstance(member, bytes):
        member = member.decode("utf-8")
    return member.partition(":")[2]
