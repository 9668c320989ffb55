"""Key/value state of a service, hot in Redis and kept in PostgreSQL.

Each name is one versioned cell in Redis (see redis_side), so writes that
reach Redis out of commit order, and read-throughs that race a write, keep
the newest value.
"""

from __future__ import annotations

from typing import Any

from vv._errors import InvalidRequest
from vv._keys import ServiceKeys
from vv.storage import codec
from vv.storage.postgres import Database
from vv.storage.redis_side import TOMBSTONE, HotStore
from vv.storage.writes import WriteTasks

__all__ = ["State"]

_UPSERT = (
    "INSERT INTO vv_state (name, value, version) VALUES ($1, $2, nextval('vv_versions')) "
    "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version RETURNING version"
)


class State:
    """Named JSON values: ``await state.set("level", 3)``, ``await state.get("level")``."""

    def __init__(
        self, keys: ServiceKeys, hot: HotStore, database: Database, ttl_s: float | None, writes: WriteTasks
    ) -> None:
        self.keys = keys
        self.hot = hot
        self.database = database
        self.ttl_s = ttl_s
        self._writes = writes

    async def get(self, name: str, default: Any = None) -> Any:
        """Return the value stored under ``name``, or ``default`` if there is none."""
        key = self.keys.state(_checked_name(name))
        hit, text = await self.hot.read_cell(key, self.ttl_s)
        if hit:
            return default if text is None else codec.decode_value(text)

        row = await self.database.fetchrow("SELECT value, version FROM vv_state WHERE name = $1", name)
        if row is None:
            return default
        await self.hot.write_cell(key, row["version"], row["value"], self.ttl_s)
        return codec.decode_value(row["value"])

    async def set(self, name: str, value: Any) -> None:
        """Store ``value`` (any JSON value) under ``name``, committed to PostgreSQL first."""
        key = self.keys.state(_checked_name(name))
        text = codec.encode_value(codec.check_json_value(value, f"state {name!r}"))
        await self._writes.run(self._store(name, key, text))

    async def delete(self, name: str) -> None:
        """Remove ``name``; nothing happens if it is not set."""
        key = self.keys.state(_checked_name(name))
        await self._writes.run(self._remove(name, key))

    async def _store(self, name: str, key: str, text: str) -> None:
        version = await self.database.fetchval(_UPSERT, name, text)
        await self.hot.write_cell(key, version, text, self.ttl_s)

    async def _remove(self, name: str, key: str) -> None:
        sql = "DELETE FROM vv_state WHERE name = $1 RETURNING nextval('vv_versions')"
        version = await self.database.fetchval(sql, name)
        if version is not None:
            await self.hot.write_cell(key, version, TOMBSTONE, None)


def _checked_name(name: str) -> str:
    if type(name) is not str or not name:
        raise InvalidRequest(f"invalid state name {name!r}: use non-empty text")
    return codec.check_text(name, "state name")
