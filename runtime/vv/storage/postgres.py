"""The service's PostgreSQL database: the connection pool, errors and schema.

Every asyncpg call of the storage goes through ``Database.run``, which
bounds the whole operation (waiting for a connection included) by
``OPERATION_TIMEOUT_S`` and maps connection trouble to StorageUnavailable, so
a write fails within 2 s while PostgreSQL is down. The pool replaces a
connection that the server closed the next time it is acquired, so the
service works again without a restart once PostgreSQL is back.

A handler cancelled while it waits on PostgreSQL (for example because its
caller timed out) leaves the pool through ``async with pool.acquire()``:
asyncpg then cancels the running statement, or closes the connection, before
the connection goes back to the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from vv._errors import ConfigError, StorageError, StorageUnavailable
from vv.storage.entity import Entity

__all__ = ["Database", "quote"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# One storage operation (acquire plus statements) may take this long before
# it fails with StorageUnavailable. That leaves headroom under the 2 s within
# which a caller must learn that PostgreSQL is down.
OPERATION_TIMEOUT_S = 1.5
CONNECT_TIMEOUT_S = 1.0
POOL_MAX_SIZE = 10
# Connections idle this long are closed, so a quiet service keeps few open.
POOL_IDLE_LIFETIME_S = 60.0

# SQLSTATE classes that mean the server cannot serve us right now:
# 08 connection exception, 53 insufficient resources, 57 operator
# intervention (shutdown, cancel by admin).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
_UNAVAILABLE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    # Raised when every try found a pooled connection that the server had closed.
    asyncpg.InternalClientError,
)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query when a connection returns to the pool.

    The storage never changes session state (no SET, LISTEN, cursors or
    session advisory locks), and asyncpg still rolls back an open
    transaction before calling this. Skipping the query saves one round
    trip per operation.
    """


def quote(identifier: str) -> str:
    """Return ``identifier`` as a quoted PostgreSQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def is_unavailable(exc: BaseException) -> bool:
    """Return whether ``exc`` means PostgreSQL cannot be reached or cannot serve now."""
    if isinstance(exc, _UNAVAILABLE_ERRORS):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES


class Database:
    """A pool of connections to one service's own PostgreSQL database."""

    def __init__(self, url: str, service_id: str) -> None:
        self.url = url
        self.service_id = service_id
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Create the pool; raise StorageUnavailable if PostgreSQL cannot be reached in time."""
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT_S + CONNECT_TIMEOUT_S):
                self.pool = await asyncpg.create_pool(
                    self.url,
                    min_size=1,
                    max_size=POOL_MAX_SIZE,
                    timeout=CONNECT_TIMEOUT_S,
                    command_timeout=OPERATION_TIMEOUT_S,
                    max_inactive_connection_lifetime=POOL_IDLE_LIFETIME_S,
                    server_settings={"application_name": f"vv:{self.service_id}"},
                    reset=_keep_session,
                )
        except Exception as exc:
            if is_unavailable(exc):
                raise StorageUnavailable(f"PostgreSQL for {self.service_id} cannot be reached: {exc!r}") from exc
            raise

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``operation`` on a pooled connection within OPERATION_TIMEOUT_S, mapping connection errors."""
        if self.pool is None:
            raise StorageUnavailable(f"storage of {self.service_id} is closed")
        try:
            async with asyncio.timeout(OPERATION_TIMEOUT_S):
                # Each idle connection of the pool may be broken the same way.
                # _run_on_pooled_connection closes a broken one, and nothing
                # was sent on it, so another try is safe.
                for _ in range(POOL_MAX_SIZE):
                    try:
                        return await self._run_on_pooled_connection(operation)
                    except asyncpg.InternalClientError:
                        continue
                return await self._run_on_pooled_connection(operation)
        except asyncpg.UniqueViolationError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                raise StorageUnavailable(
                    f"PostgreSQL for {self.service_id} is unavailable ({type(exc).__name__}); "
                    f"retry when it is back"
                ) from exc
            if isinstance(exc, asyncpg.PostgresError):
                raise StorageError(f"PostgreSQL rejected a statement of {self.service_id}: {exc}") from exc
            raise

    async def _run_on_pooled_connection(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async with self.pool.acquire() as connection:
            try:
                return await operation(connection)
            except asyncpg.InternalClientError:
                # When the server ends an idle pooled session (for example on
                # a fast shutdown), asyncpg (0.32) can read the server's error
                # message before it reads the end of the stream. The connection's
                # protocol then rejects the next statement before sending it.
                # Closing the connection makes the pool open a new one.
                connection.terminate()
                raise

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self.run(lambda connection: connection.fetchrow(sql, *args))

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self.run(lambda connection: connection.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.run(lambda connection: connection.fetchval(sql, *args))

    async def create_schema(self, entity: Entity | None) -> None:
        """Create the tables and indexes of the storage if missing; safe to run on every start."""
        statements = schema_statements(entity)

        async def apply(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                # Replicas starting together would otherwise race on CREATE
                # TABLE IF NOT EXISTS, which is not safe under concurrency.
                await connection.execute("SELECT pg_advisory_xact_lock(hashtext('vv.schema'))")
                for statement in statements:
                    await connection.execute(statement)

        await self.run(apply)
        if entity is not None:
            await self._check_column_types(entity)
            await self._fill_unique_keys(entity)
        logger.info("schema ready service=%s entity=%s", self.service_id, entity.name if entity else None)

    async def _check_column_types(self, entity: Entity) -> None:
        """Raise ConfigError for a field whose existing column has another type."""
        sql = (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = $1 AND table_schema = current_schema()"
        )
        existing = {row["column_name"]: row["data_type"] for row in await self.fetch(sql, entity.name)}
        for name, declared in entity.fields.items():
            if existing.get(name, declared.column_type) != declared.column_type:
                raise ConfigError(
                    f"field {name!r} of {entity.name} is declared {declared.type.__name__} "
                    f"({declared.column_type}) but its column is {existing[name]}: "
                    "migrate the column or declare the field with its old type"
                )

    async def _fill_unique_keys(self, entity: Entity) -> None:
        """Fill the comparison keys of rows written before their field became unique."""
        table = quote(entity.name)
        for name in entity.unique_fields:
            declared, column, key = entity.fields[name], quote(name), quote(key_column(name))
            sql = f"SELECT id, {column} FROM {table} WHERE {key} IS NULL AND {column} IS NOT NULL"
            rows = await self.fetch(sql)
            try:
                for row in rows:
                    value = declared.comparison_key(row[1])
                    await self.fetchval(f"UPDATE {table} SET {key} = $2 WHERE id = $1", row[0], value)
            except asyncpg.UniqueViolationError as exc:
                raise ConfigError(
                    f"field {name!r} of {entity.name} is declared unique but existing records share "
                    f"a value ({exc.detail}): remove the duplicates or drop unique=True"
                ) from exc
            if rows:
                logger.info("filled unique keys service=%s field=%s rows=%d", self.service_id, name, len(rows))


def key_column(field_name: str) -> str:
    """Name of the column that stores the comparison key of a unique field."""
    return f"_key_{field_name}"


def schema_statements(entity: Entity | None) -> list[str]:
    """Return the DDL for the shared tables and, if declared, the entity's table."""
    statements = [
        "CREATE SEQUENCE IF NOT EXISTS vv_versions",
        "CREATE TABLE IF NOT EXISTS vv_list_items ("
        " list text NOT NULL, position bigserial PRIMARY KEY, value text NOT NULL)",
        "CREATE INDEX IF NOT EXISTS vv_list_items_list ON vv_list_items (list, position)",
        "CREATE TABLE IF NOT EXISTS vv_state (name text PRIMARY KEY, value text NOT NULL, version bigint NOT NULL)",
    ]
    if entity is not None:
        statements += entity_statements(entity)
    return statements


def entity_statements(entity: Entity) -> list[str]:
    """Return the DDL of the entity's table; new fields are added as nullable columns."""
    table = quote(entity.name)
    statements = [f"CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, _version bigint NOT NULL)"]
    for name, declared in entity.fields.items():
        statements.append(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {quote(name)} {declared.column_type}")
    for name in entity.unique_fields:
        column = quote(key_column(name))
        index = quote(entity.unique_index_name(name))
        statements.append(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} text")
        statements.append(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} ({column})")
    return statements
