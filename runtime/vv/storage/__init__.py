"""Storage of a service: records of its entity, lists and state.

Each service owns one entity. Its records live in the service's own
PostgreSQL database (the cold store, the source of truth) and as hot copies
in Redis, so reads almost never reach PostgreSQL::

    class User(Service):
        entity = Entity("user", {
            "login": Field(str, required=True, unique=True),
            "password": Field(str, required=True, hashed=True),
            "machine": Field(int, reference="machine"),
            "settings": Field(dict, default={}),
        }, hot_ttl_s=3600)

        @rpc()
        async def register(self, login: str, password: str) -> int:
            return await self.records.add(login=login, password=password)

Decisions, and where they are enforced:

- Fields (``entity.Field``) have a type: str, int (64-bit), float, bool,
  dict, list or object (any JSON value). Bytes are rejected, both as a field
  type and as a value; store base64 text. Adding or updating validates the
  record and raises InvalidRequest naming the field.
- Unique text is compared case-insensitively by default: NFC-normalized, then
  ``str.casefold``, so "Ann@x.org" and "ann@X.org" conflict. The value is
  stored as written. ``Field(str, unique=True, case_sensitive=True)``
  compares exactly. PostgreSQL stores the comparison key in a column
  ``_key_<field>`` with a unique index. A violation becomes Conflict naming
  the field (409), so the loser of a race never gets a 500.
- Hashed fields hold a salted scrypt hash (``hashing``), kept in PostgreSQL
  only. Reads, events and Redis never carry it; ``records.verify(id, field,
  candidate)`` checks a candidate.
- Ids come from the PostgreSQL sequence of the entity's table, so an id is
  never reused, even after Redis lost everything. Ids may have gaps: an add
  that fails, for example on a unique conflict, still uses up its id.
- Write path: PostgreSQL commit, then one Redis round trip. In it a Lua
  script writes the Redis copy and appends the record event
  ``<entity>.added`` / ``.updated`` / ``.deleted`` to the service's event
  stream, in the entry format of ``Service.emit``. The event carries the
  record without hashed fields. A ``Service`` subclass that overrides
  ``emit``, or a service side that is not a ``Service``, instead gets its
  ``emit`` called while the copy is written. Read path: Redis, then PostgreSQL, refilling Redis.
  Versions from one PostgreSQL sequence order the Redis writes (see
  ``redis_side``). Each write runs in a task of its own (``writes``), so a
  caller cancelled by a timeout cannot stop it between the commit and the
  Redis step, and concurrent writes share Redis round trips (``redis_side``).
- Values are stored as JSON text (``codec``) in Redis and in the text
  columns of dict, list and object fields. Other fields use typed columns. None, "", "None", 0,
  False, floats (bit for bit), control characters and 4-byte characters
  come back equal and of the same type. Text containing U+0000 is rejected
  in str fields because PostgreSQL text cannot hold it; inside dict, list
  and object fields it is escaped and kept.
- Hot copies expire ``hot_ttl_s`` seconds after their last write or read,
  never when it is None. Records take it from ``Entity(hot_ttl_s=...)``;
  lists and state from the service class attribute ``hot_ttl_s``, else from
  the entity.
- Schema: tables and unique indexes are created on start, idempotently. A
  new field becomes a nullable column and reads as None on older records. A
  field made unique later gets the comparison keys of older records filled
  in. Start fails with ConfigError when a field's type no longer matches its
  column or older records share a value of a field made unique.
- PostgreSQL trouble: each operation is bounded by 1.5 s, then raises
  StorageUnavailable (503), and hot reads still come from Redis
  (``postgres``). Redis trouble raises TransportError after one retry.
- If Redis fails after the PostgreSQL commit, the caller gets
  TransportError although the change is stored. The Redis copy may then
  stay stale until its TTL runs out or the record is written again.
- Redis keys are built in ``vv._keys`` and all carry the service's hash tag,
  so every key of one operation is in one Redis Cluster slot. User data
  (unique values, list items) is stored in hash fields and set members, and
  list and state names come after the tag, so it never changes the slot.

``Storage.records_of(component)`` reads another service's records of the
same app from Redis and, on a miss, through that service's ``_record_get``
RPC; it never connects to another service's database.
"""

from vv.storage.entity import Entity, Field
from vv.storage.hashing import hash_secret, verify_secret
from vv.storage.lists import StoredList
from vv.storage.records import ForeignRecords, Records
from vv.storage.state import State
from vv.storage.store import Storage, open_storage

__all__ = [
    "Entity",
    "Field",
    "ForeignRecords",
    "Records",
    "State",
    "Storage",
    "StoredList",
    "hash_secret",
    "open_storage",
    "verify_secret",
]
