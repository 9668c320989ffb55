"""Append-only lists, such as a log of events that a statistics service keeps.

PostgreSQL numbers the items (column ``position``, one sequence for all
lists, so positions rise but have gaps). The Redis copy is a sorted set
scored by position, so items sit in commit order whatever order the Redis
writes arrive in. An append always adds its item to the set; a reader uses
the set only when it contains the marker that a full load from PostgreSQL
left, else it loads the list first. An append racing a load is therefore
either in the loaded rows or added by the append itself, and adding it twice
is harmless.
"""

from __future__ import annotations

from typing import Any

from vv._errors import InvalidRequest
from vv._keys import ServiceKeys
from vv.storage import codec
from vv.storage.postgres import Database
from vv.storage.redis_side import LIST_MARKER_POSITION, HotStore
from vv.storage.writes import WriteTasks

__all__ = ["StoredList"]

# Items per script call when a list is loaded into Redis, to keep each call short.
_LOAD_BATCH_ITEMS = 1000


class StoredList:
    """One named append-only list of JSON values."""

    def __init__(
        self, name: str, keys: ServiceKeys, hot: HotStore, database: Database, ttl_s: float | None, writes: WriteTasks
    ) -> None:
        if not name:
            raise InvalidRequest("a list needs a non-empty name")
        codec.check_text(name, "list name")
        self.name = name
        self.key = keys.stored_list(name)
        self.hot = hot
        self.database = database
        self.ttl_s = ttl_s
        self._writes = writes

    async def append(self, value: Any) -> None:
        """Append ``value`` (any JSON value) after it is committed to PostgreSQL."""
        text = codec.encode_value(codec.check_json_value(value, f"item of list {self.name!r}"))
        await self._writes.run(self._insert(text))

    async def _insert(self, text: str) -> None:
        sql = "INSERT INTO vv_list_items (list, value) VALUES ($1, $2) RETURNING position"
        position = await self.database.fetchval(sql, self.name, text)
        await self.hot.add_items(self.key, [(position, text)], self.ttl_s)

    async def items(self, first: int = 0, last: int = -1) -> list[Any]:
        """Return the items from index ``first`` to ``last``, both included; negative counts from the end."""
        texts = await self.hot.read_items(self.key, first, last, self.ttl_s)
        if texts is None:
            await self._load()
            texts = await self.hot.read_items(self.key, first, last, self.ttl_s)
        # A copy that expires between the load and the read is read from
        # PostgreSQL directly rather than loaded again.
        if texts is None:
            texts = [text for _, text in await self._rows()][_python_slice(first, last)]
        return [codec.decode_value(text) for text in texts]

    async def length(self) -> int:
        count = await self.hot.count_items(self.key)
        if count is None:
            count = await self.database.fetchval("SELECT count(*) FROM vv_list_items WHERE list = $1", self.name)
        return count

    async def _load(self) -> None:
        rows = await self._rows()
        # The marker goes in last, so no reader sees a partial copy as complete.
        for start in range(0, len(rows), _LOAD_BATCH_ITEMS):
            await self.hot.add_items(self.key, rows[start : start + _LOAD_BATCH_ITEMS], self.ttl_s)
        await self.hot.add_items(self.key, [(LIST_MARKER_POSITION, "")], self.ttl_s)

    async def _rows(self) -> list[tuple[int, str]]:
        sql = "SELECT position, value FROM vv_list_items WHERE list = $1 ORDER BY position"
        return [(row["position"], row["value"]) for row in await self.database.fetch(sql, self.name)]


def _python_slice(first: int, last: int) -> slice:
    return slice(first, None if last == -1 else last + 1)
