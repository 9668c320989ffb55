"""Records of the service's own entity, and read-only records of another service.

Write path (add, update, delete): the statement commits in PostgreSQL first.
Then one Lua script writes the Redis copy, moves the unique index entries
and appends the record event to the service's event stream, all in one
Redis round trip (``_publish``). Both steps run in one task of
``WriteTasks``, so a cancelled caller cannot stop a write between them. A
successful call therefore means the change is in PostgreSQL. PostgreSQL's unique indexes decide every unique
race, across replicas; the Redis index only mirrors them for lookups.

Read path: Redis first; on a miss PostgreSQL, then Redis is refilled with
the row's version, so a refill never overwrites a newer write.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import asyncpg

from vv._errors import Conflict, InvalidRequest, NotFound
from vv._events import event_fields
from vv._keys import ServiceKeys
from vv.storage import codec
from vv.storage.entity import Entity
from vv.storage.hashing import hash_secret, verify_secret
from vv.storage.postgres import Database, key_column, quote
from vv.storage.redis_side import TOMBSTONE, EventStream, HotStore
from vv.storage.writes import WriteTasks

__all__ = ["ForeignRecords", "Records"]

logger = logging.getLogger(__name__)

# Ids come from a bigint sequence.
MAX_RECORD_ID = 2**63 - 1
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def checked_id(record_id: Any) -> int:
    """Return ``record_id`` if it can be a record id; else raise InvalidRequest."""
    if type(record_id) is not int or not 1 <= record_id <= MAX_RECORD_ID:
        raise InvalidRequest(f"invalid record id {record_id!r}: use a positive integer below 2**63")
    return record_id


class ServiceSide(Protocol):
    """The part of a service that the storage uses: emitting events and calling other services."""

    async def emit(self, event: str, payload: dict) -> Any: ...

    async def call(self, component: str, method: str, *args: Any, **kwargs: Any) -> Any: ...


class Records:
    """Add, read, update, delete and list the records of the service's entity."""

    def __init__(
        self,
        entity: Entity,
        keys: ServiceKeys,
        hot: HotStore,
        database: Database,
        service: ServiceSide,
        storage: Any,
        writes: WriteTasks,
        events: EventStream | None = None,
    ) -> None:
        """``events`` is the service's event stream when the write script may append record events to it.

        Without it, record events go through ``service.emit``.
        """
        self.entity = entity
        self.keys = keys
        self.hot = hot
        self.database = database
        self.service = service
        self._storage = storage
        self._writes = writes
        self._events = events
        self._table = quote(entity.name)
        self._public_keys = {"id", *entity.public_fields}
        self._public_columns = ", ".join(["id", "_version", *(quote(name) for name in entity.public_fields)])

    # --- writes ----------------------------------------------------------

    async def add(self, values: dict[str, Any] | None = None, /, **fields: Any) -> int:
        """Validate and store a new record; return its id.

        Raises InvalidRequest naming the field, Conflict naming a unique field
        whose value is taken, or StorageUnavailable.
        """
        record = self.entity.check_new({**(values or {}), **fields})
        await self._check_references(record)
        hashed = await self._hash_secrets(record)
        return await self._writes.run(self._add_row(hashed))

    async def update(self, record_id: int, changes: dict[str, Any] | None = None, /, **fields: Any) -> dict:
        """Change some fields of a record; return the record as it is now."""
        converted = self.entity.check_changes({**(changes or {}), **fields})
        await self._check_references(converted)
        hashed = await self._hash_secrets(converted)
        return await self._writes.run(self._update_row(checked_id(record_id), hashed))

    async def delete(self, record_id: int) -> None:
        """Delete a record and free its unique values; raise NotFound if it does not exist."""
        await self._writes.run(self._delete_row(checked_id(record_id)))

    # Each of these runs as one WriteTasks task: the statement, then the Redis step.

    async def _add_row(self, record: dict[str, Any]) -> int:
        row = await self._insert(record)
        public = self._public_record(row)
        await self._publish("added", row["_version"], public, codec.encode_value(public), self._indexes(row, {}))
        return public["id"]

    async def _update_row(self, record_id: int, changes: dict[str, Any]) -> dict:
        row = await self._update(record_id, changes)
        public = self._public_record(row)
        old_keys = {name: row[f"_old_{key_column(name)}"] for name in self.entity.unique_fields}
        indexes = self._indexes(row, old_keys)
        await self._publish("updated", row["_version"], public, codec.encode_value(public), indexes)
        return public

    async def _delete_row(self, record_id: int) -> None:
        sql = f"DELETE FROM {self._table} WHERE id = $1 RETURNING *, nextval('vv_versions') AS _deleted_version"
        row = await self.database.fetchrow(sql, record_id)
        if row is None:
            raise NotFound(f"{self.entity.name} {record_id} not found")

        public = self._public_record(row)
        indexes = [
            (self.keys.unique_index(name), row[key_column(name)], None) for name in self.entity.unique_fields
        ]
        await self._publish("deleted", row["_deleted_version"], public, TOMBSTONE, indexes)

    # --- reads -----------------------------------------------------------

    async def get(self, record_id: int) -> dict:
        """Return a record without its hashed fields; raise NotFound if it does not exist."""
        key = self.keys.record(checked_id(record_id))
        hit, text = await self.hot.read_cell(key, self.entity.hot_ttl_s)
        if hit and text is not None:
            return self._decode(text)
        if hit:
            raise NotFound(f"{self.entity.name} {record_id} not found")
        return await self._read_through(record_id)

    async def find(self, field_name: str, value: Any) -> dict | None:
        """Return the record whose unique ``field_name`` matches ``value``, or None."""
        declared = self.entity.fields.get(field_name)
        if declared is None or not declared.unique:
            raise InvalidRequest(f"find needs a unique field of {self.entity.name}, got {field_name!r}")
        key = declared.comparison_key(declared.convert(field_name, value))
        if key is None:
            return None

        record_id = await self.hot.lookup_unique(self.keys.unique_index(field_name), key)
        if record_id is not None:
            record = await self._get_or_none(record_id)
            # The index entry may be stale (a lost race or a deleted record):
            # trust it only if the record still has the value.
            if record is not None and declared.comparison_key(record[field_name]) == key:
                return record
        return await self._find_cold(field_name, key)

    async def list(self, after_id: int = 0, limit: int = DEFAULT_PAGE_SIZE) -> list[dict]:
        """Return up to ``limit`` records with ids above ``after_id``, in id order.

        Pages are read from PostgreSQL: after Redis lost data it cannot tell
        whether its copies are complete. Pass the last id of a page as
        ``after_id`` to get the next page.
        """
        if type(after_id) is not int or after_id < 0:
            raise InvalidRequest(f"invalid after_id {after_id!r}: use 0 or the last id of the previous page")
        if type(limit) is not int or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"invalid page size {limit}: use 1 to {MAX_PAGE_SIZE}")
        sql = f"SELECT {self._public_columns} FROM {self._table} WHERE id > $1 ORDER BY id LIMIT $2"
        rows = await self.database.fetch(sql, after_id, limit)
        return [self._public_record(row) for row in rows]

    async def verify(self, record_id: int, field_name: str, candidate: str) -> bool:
        """Return whether ``candidate`` matches the hashed field of a record; read from PostgreSQL."""
        if field_name not in self.entity.hashed_fields:
            raise InvalidRequest(f"field {field_name!r} of {self.entity.name} is not hashed")
        sql = f"SELECT {quote(field_name)} FROM {self._table} WHERE id = $1"
        row = await self.database.fetchrow(sql, checked_id(record_id))
        if row is None:
            raise NotFound(f"{self.entity.name} {record_id} not found")
        return await asyncio.to_thread(verify_secret, row[0], candidate)

    # --- PostgreSQL ------------------------------------------------------

    async def _insert(self, record: dict[str, Any]) -> asyncpg.Record:
        columns, values = self._columns_and_values(record)
        placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        names = ", ".join([*columns, "_version"])
        sql = (
            f"INSERT INTO {self._table} ({names}) VALUES ({placeholders}{', ' if values else ''}"
            f"nextval('vv_versions')) RETURNING *"
        )
        return await self._write_statement(sql, values, record)

    async def _update(self, record_id: int, changes: dict[str, Any]) -> asyncpg.Record:
        columns, values = self._columns_and_values(changes)
        assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(columns, start=2))
        # The CTE locks the row and returns the unique keys it had before, so
        # Redis can drop the index entries of values this update frees.
        old_keys = ", ".join(["id", *(quote(key_column(name)) for name in self.entity.unique_fields)])
        returned_old = "".join(
            f", old.{quote(key_column(name))} AS {quote('_old_' + key_column(name))}"
            for name in self.entity.unique_fields
        )
        sql = (
            f"WITH old AS (SELECT {old_keys} FROM {self._table} WHERE id = $1 FOR UPDATE) "
            f"UPDATE {self._table} AS t SET {assignments}, _version = nextval('vv_versions') "
            f"FROM old WHERE t.id = old.id RETURNING t.*{returned_old}"
        )
        row = await self._write_statement(sql, [record_id, *values], changes)
        if row is None:
            raise NotFound(f"{self.entity.name} {record_id} not found")
        return row

    async def _write_statement(self, sql: str, values: list[Any], record: dict[str, Any]) -> asyncpg.Record:
        try:
            return await self.database.fetchrow(sql, *values)
        except asyncpg.UniqueViolationError as exc:
            raise self._conflict(exc, record) from exc

    def _conflict(self, exc: asyncpg.UniqueViolationError, record: dict[str, Any]) -> Conflict:
        field_name = self.entity.field_of_index(exc.constraint_name)
        if field_name is None:
            return Conflict(f"{self.entity.name}: a unique value is already taken ({exc.constraint_name})")
        return Conflict(
            f"{self.entity.name} with {field_name} {record.get(field_name)!r} already exists: "
            f"{field_name} must be unique"
        )

    def _columns_and_values(self, record: dict[str, Any]) -> tuple[list[str], list[Any]]:
        columns, values = [], []
        for name, value in record.items():
            declared = self.entity.fields[name]
            columns.append(quote(name))
            values.append(codec.encode_value(value) if declared.is_json and value is not None else value)
            if declared.unique:
                columns.append(quote(key_column(name)))
                values.append(declared.comparison_key(value))
        return columns, values

    async def _hash_secrets(self, record: dict[str, Any]) -> dict[str, Any]:
        hashed = dict(record)
        for name in self.entity.hashed_fields:
            if hashed.get(name) is not None:
                hashed[name] = await asyncio.to_thread(hash_secret, hashed[name])
        return hashed

    async def _check_references(self, record: dict[str, Any]) -> None:
        for name, declared in self.entity.fields.items():
            value = record.get(name)
            if declared.reference is None or value is None:
                continue
            try:
                await self._storage.records_of(declared.reference).get(value)
            except NotFound as exc:
                raise InvalidRequest(f"invalid value for field {name!r}: {declared.reference} {value} not found") from exc

    # --- Redis -----------------------------------------------------------

    async def _publish(
        self,
        change: str,
        version: int,
        public: dict,
        text: str,
        indexes: list[tuple[str, str | None, str | None]],
    ) -> None:
        """Write the Redis copy ``text`` (a tombstone for a delete) and emit ``<entity>.<change>``, after the commit.

        With the service's event stream known, one script does both in one
        round trip, and the copy is in Redis before the event can be read.
        Otherwise the write and ``service.emit`` run at the same time. A
        subscriber that reads the record before its copy reaches Redis then
        reads it from PostgreSQL.
        """
        # NOTE: if Redis fails here, the caller gets TransportError although the
        # change is committed, and an updated record's old copy stays in Redis
        # until its TTL runs out or the record is written again.
        record_id = public["id"]
        key = self.keys.record(record_id)
        name = f"{self.entity.name}.{change}"
        ttl_s = self.entity.hot_ttl_s
        if self._events is None:
            write = self.hot.write_record(key, record_id, version, text, ttl_s, indexes)
            await asyncio.gather(write, self.service.emit(name, public))
            return

        # The copy's text is the event body: codec.encode_value and the
        # events' encode_json give the same text for every stored value.
        body = codec.encode_value(public) if text == TOMBSTONE else text
        fields = event_fields(name, body)
        await self.hot.write_record_and_emit(key, record_id, version, text, ttl_s, indexes, self._events, fields)

    def _indexes(self, row: asyncpg.Record, old_keys: dict[str, str | None]) -> list[tuple[str, Any, Any]]:
        """Return (index key, comparison key before the write, key after it) for each unique field."""
        return [
            (self.keys.unique_index(name), old_keys.get(name), row[key_column(name)])
            for name in self.entity.unique_fields
        ]

    async def _write_hot(self, row: asyncpg.Record, public: dict) -> None:
        """Refill Redis with a row read from PostgreSQL; the version check keeps a newer copy."""
        await self.hot.write_record(
            self.keys.record(public["id"]), public["id"], row["_version"], codec.encode_value(public),
            self.entity.hot_ttl_s, self._indexes(row, {}),
        )

    async def _read_through(self, record_id: int) -> dict:
        row = await self._select("id = $1", record_id)
        if row is None:
            raise NotFound(f"{self.entity.name} {record_id} not found")
        public = self._public_record(row)
        await self._write_hot(row, public)
        return public

    async def _find_cold(self, field_name: str, key: str | None) -> dict | None:
        row = await self._select(f"{quote(key_column(field_name))} = $1", key)
        if row is None:
            return None
        public = self._public_record(row)
        await self._write_hot(row, public)
        return public

    async def _select(self, condition: str, value: Any) -> asyncpg.Record | None:
        keys = "".join(f", {quote(key_column(name))}" for name in self.entity.unique_fields)
        sql = f"SELECT {self._public_columns}{keys} FROM {self._table} WHERE {condition}"
        return await self.database.fetchrow(sql, value)

    async def _get_or_none(self, record_id: int) -> dict | None:
        try:
            return await self.get(record_id)
        except NotFound:
            return None

    # --- conversion ------------------------------------------------------

    def _public_record(self, row: asyncpg.Record) -> dict:
        record: dict[str, Any] = {"id": row["id"]}
        for name in self.entity.public_fields:
            value = row[name]
            if self.entity.fields[name].is_json and value is not None:
                value = codec.decode_value(value)
            record[name] = value
        return record

    def _decode(self, text: str | bytes) -> dict:
        stored = codec.decode_value(text)
        if stored.keys() == self._public_keys:
            return stored
        # Copies written before a field was added lack it: it reads as None,
        # the same as the NULL PostgreSQL holds for such rows.
        record = {"id": stored["id"]}
        for name in self.entity.public_fields:
            record[name] = stored.get(name)
        return record


class ForeignRecords:
    """Read-only access to the records of another service of the same app.

    Reads the owner's Redis copy directly; on a miss it calls the owner's
    internal ``_record_get`` RPC, which reads PostgreSQL and refills Redis.
    It never connects to the owner's database.
    """

    def __init__(self, component: str, keys: ServiceKeys, hot: HotStore, service: ServiceSide) -> None:
        self.component = component
        self.keys = keys
        self.hot = hot
        self.service = service

    async def get(self, record_id: int) -> dict:
        """Return the owner's record; raise NotFound if it does not exist."""
        hit, text = await self.hot.read_cell(self.keys.record(checked_id(record_id)))
        if hit and text is not None:
            return codec.decode_value(text)
        if hit:
            raise NotFound(f"{self.component} {record_id} not found")
        return await self.service.call(self.component, "_record_get", record_id)
