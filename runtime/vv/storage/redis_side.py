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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.exceptions

from vv._errors import TransportError

T = TypeVar("T")

__all__ = ["EventStream", "HotStore", "TOMBSTONE_TTL_MS"]

# A tombstone only has to outlive read-throughs that started before the
# delete; an operation gives up on PostgreSQL after 1.5 s.
TOMBSTONE_TTL_MS = 60_000
TOMBSTONE = ""

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

    Every command here may run twice: reads have no effect, and the scripts
    write only versions newer than the stored one or add set members that
    are already there. The one exception is the event that
    ``write_record_and_emit`` appends, which a second run appends again.
    A Redis restart drops every pooled connection, so the first command on
    each would fail without the retry.
    """
    try:
        return await command()
    except redis.exceptions.ConnectionError:
        pass
    except redis.exceptions.TimeoutError as exc:
        raise TransportError(f"Redis timed out on {what}: {exc}") from exc
    try:
        return await command()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise TransportError(f"Redis failed on {what}: {exc}") from exc


class HotStore:
    """The Redis calls of the storage, with the scripts registered once."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._write_cell = redis.register_script(_WRITE_CELL)
        self._write_record = redis.register_script(_WRITE_RECORD)
        self._write_record_and_emit = redis.register_script(_WRITE_RECORD_AND_EMIT)
        self._add_items = redis.register_script(_ADD_ITEMS)
        self._read_items = redis.register_script(_READ_ITEMS)
        self._count_items = redis.register_script(_COUNT_ITEMS)

    async def read_cell(self, key: str, ttl_s: float | None = None) -> tuple[bool, str | bytes | None]:
        """Return (hit, value text); a tombstone is a hit with None.

        With ``ttl_s`` the read also restarts the copy's TTL, in the same
        round trip, so copies that are read stay hot.
        """
        if ttl_s is None:
            text = await _with_one_retry(lambda: self.redis.hget(key, "d"), f"HGET {key}")
        else:
            text = await _with_one_retry(lambda: self._read_and_touch(key, ttl_s), f"HGET {key}")
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
        written = await _with_one_retry(lambda: self._write_cell(keys=[key], args=[version, text, ttl]), f"write {key}")
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
        written = await _with_one_retry(lambda: self._write_record(keys=keys, args=args), f"write {key}")
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
        written = await _with_one_retry(lambda: self._write_record_and_emit(keys=keys, args=args), f"write {key}")
        return bool(written)

    async def lookup_unique(self, index_key: str, comparison_key: str) -> int | None:
        found = await _with_one_retry(lambda: self.redis.hget(index_key, comparison_key), f"HGET {index_key}")
        return None if found is None else int(found)

    async def add_items(self, key: str, items: list[tuple[int, str]], ttl_s: float | None) -> None:
        args: list[Any] = []
        for position, text in items:
            args += [position, text]
        await _with_one_retry(lambda: self._add_items(keys=[key], args=[*args, ttl_ms(ttl_s)]), f"add to {key}")

    async def read_items(self, key: str, first: int, last: int, ttl_s: float | None) -> list[str] | None:
        """Return the item texts in the rank range, or None when the copy is incomplete; restart the TTL."""
        args = [first, last, ttl_ms(ttl_s)]
        members = await _with_one_retry(lambda: self._read_items(keys=[key], args=args), f"read {key}")
        if members is None:
            return None
        return [_member_text(member) for member in members]

    async def count_items(self, key: str) -> int | None:
        count = await _with_one_retry(lambda: self._count_items(keys=[key], args=[]), f"count {key}")
        return None if count < 0 else count


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
