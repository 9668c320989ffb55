"""The Storage object that a service holds, and ``open_storage`` that builds it."""

from __future__ import annotations

import logging
from typing import Any

from vv._errors import ConfigError, InvalidRequest
from vv._keys import ServiceKeys
from vv._service import Service
from vv.storage.entity import Entity
from vv.storage.lists import StoredList
from vv.storage.postgres import Database
from vv.storage.records import ForeignRecords, Records, ServiceSide
from vv.storage.redis_side import DEFAULT_COMMAND_TIMEOUT_S, EventStream, HotStore
from vv.storage.state import State
from vv.storage.writes import WriteTasks

__all__ = ["Storage", "open_storage"]

logger = logging.getLogger(__name__)


class Storage:
    """Records, lists and state of one service; built by ``open_storage``."""

    def __init__(
        self,
        keys: ServiceKeys,
        hot: HotStore,
        database: Database | None,
        service: ServiceSide,
        entity: Entity | None,
        hot_ttl_s: float | None,
        events: EventStream | None = None,
    ) -> None:
        self.keys = keys
        self.hot = hot
        self.database = database
        self.service = service
        self.entity = entity
        self.hot_ttl_s = hot_ttl_s
        self.writes = WriteTasks()
        self._records = (
            None if entity is None else Records(entity, keys, hot, database, service, self, self.writes, events)
        )
        self._state = None if database is None else State(keys, hot, database, hot_ttl_s, self.writes)

    @property
    def records(self) -> Records:
        """Records of the service's own entity."""
        if self._records is None:
            raise ConfigError(f"service {self.keys.service_id} declares no entity: set the class attribute 'entity'")
        return self._records

    @property
    def state(self) -> State:
        """Key/value state of the service."""
        if self._state is None:
            raise ConfigError(f"service {self.keys.service_id} has no database: set DATABASE to use state")
        return self._state

    def list(self, name: str) -> StoredList:
        """Return the append-only list ``name``."""
        if self.database is None:
            raise ConfigError(f"service {self.keys.service_id} has no database: set DATABASE to use lists")
        return StoredList(name, self.keys, self.hot, self.database, self.hot_ttl_s, self.writes)

    def records_of(self, component: str) -> ForeignRecords | Records:
        """Return read-only access to the records of ``component`` in the same app."""
        if component == self.keys.component:
            return self.records
        if not component or "." in component:
            raise InvalidRequest(f"invalid component {component!r}: records_of reads components of the same app only")
        return ForeignRecords(component, ServiceKeys(self.keys.app, component), self.hot, self.service)

    async def close(self) -> None:
        """Let running writes finish and send their Redis steps, then close the database pool."""
        await self.writes.wait()
        await self.hot.close()
        if self.database is not None:
            await self.database.close()


async def open_storage(
    keys: ServiceKeys,
    redis: Any,
    database_url: str | None,
    service: ServiceSide,
    redis_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    redis_max_reads: int | None = None,
) -> Storage:
    """Open the storage of ``service``: connect to its database and create the schema.

    ``redis`` should have no socket timeout: each storage command is bounded
    by ``redis_timeout_s`` instead. ``redis_max_reads`` limits the reads
    in flight. Writes take one more connection, so a plain pool of
    ``redis_max_reads + 1`` connections is never exhausted.

    The entity comes from the service's class attribute ``entity``; the TTL of
    hot copies of lists and state from ``hot_ttl_s`` (the entity's TTL if unset).
    Raises ConfigError for an entity without a database URL and
    StorageUnavailable if PostgreSQL cannot be reached in time.
    """
    entity = _declared_entity(service)
    hot_ttl_s = getattr(service, "hot_ttl_s", None) or (entity.hot_ttl_s if entity else None)
    if entity is not None and not database_url:
        raise ConfigError(f"entity {entity.name!r} of {keys.service_id} needs a database: set DATABASE to its DSN")

    database = None
    if database_url:
        database = Database(database_url, keys.service_id)
        await database.open()
        try:
            await database.create_schema(entity)
        except BaseException:
            await database.close()
            raise
    logger.info("storage open service=%s entity=%s", keys.service_id, entity.name if entity else None)
    hot = HotStore(redis, redis_timeout_s, redis_max_reads)
    return Storage(keys, hot, database, service, entity, hot_ttl_s, _record_event_stream(keys, service))


def _record_event_stream(keys: ServiceKeys, service: ServiceSide) -> EventStream | None:
    """Return the event stream that the storage's write script appends record events to, or None.

    ``Service.emit`` only appends an entry to ``keys.events``, so for a
    ``Service`` that keeps it the script that writes the Redis copy appends
    the event too, saving a round trip. A subclass that overrides ``emit``,
    and any other service side, gets None: its ``emit`` is called.
    """
    if isinstance(service, Service) and type(service).emit is Service.emit:
        return EventStream(keys.events, service.settings.max_events_len)
    return None


def _declared_entity(service: Any) -> Entity | None:
    entity = getattr(service, "entity", None)
    if entity is None or isinstance(entity, Entity):
        return entity
    raise ConfigError(f"{type(service).__name__}.entity must be a vv.storage.Entity, got {type(entity).__name__}")
