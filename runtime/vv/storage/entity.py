"""Declaration of a service's entity: its fields and the checks on a record."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from vv._errors import ConfigError, InvalidRequest
from vv.storage import codec

__all__ = ["Entity", "Field"]

# Field and entity names become PostgreSQL column and table names and parts
# of Redis keys. PostgreSQL truncates identifiers longer than 63 bytes.
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_ENTITY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
_RESERVED_FIELDS = frozenset({"id"})
_POSTGRES_IDENTIFIER_MAX = 63

# Python type of a field -> PostgreSQL column type. ``object`` takes any JSON
# value. It and ``dict``/``list`` are stored as JSON text, not jsonb, because
# jsonb rewrites numbers (1e300 comes back as an integer) and rejects U+0000.
COLUMN_TYPES: dict[type, str] = {
    str: "text",
    int: "bigint",
    float: "double precision",
    bool: "boolean",
    dict: "text",
    list: "text",
    object: "text",
}


@dataclass(frozen=True)
class Field:
    """One field of an entity.

    ``unique`` text is compared case-insensitively (NFC-normalized, then
    ``str.casefold``) unless ``case_sensitive`` is set; the value is stored
    as written. ``hashed`` stores a salted scrypt hash in PostgreSQL only:
    reads, events and Redis never carry it, and ``Records.verify`` checks a
    candidate. ``reference`` names another component of the same app whose
    record id this field holds; adding or updating checks that it exists.
    """

    type: type = str
    required: bool = False
    unique: bool = False
    hashed: bool = False
    case_sensitive: bool = False
    reference: str | None = None
    default: Any = None

    @property
    def column_type(self) -> str:
        return COLUMN_TYPES[self.type]

    @property
    def is_json(self) -> bool:
        return self.type in (dict, list, object)

    def check_declaration(self, name: str) -> None:
        """Raise ConfigError for a field name or option combination that cannot work."""
        if not _FIELD_NAME.match(name) or name in _RESERVED_FIELDS:
            raise ConfigError(
                f"invalid field name {name!r}: use lowercase letters, digits and '_', "
                "start with a letter, at most 48 characters, and not 'id'"
            )
        if self.type is bytes:
            raise ConfigError(f"field {name!r}: bytes fields are not supported; store base64 text in a str field")
        if self.type not in COLUMN_TYPES:
            supported = ", ".join(t.__name__ for t in COLUMN_TYPES)
            raise ConfigError(f"field {name!r}: unsupported type {self.type!r}; use one of {supported}")
        if self.hashed and (self.type is not str or self.unique):
            raise ConfigError(f"field {name!r}: a hashed field must be a str field and cannot be unique")
        if self.unique and self.is_json:
            raise ConfigError(f"field {name!r}: a unique field must be str, int, float or bool")
        if self.reference is not None and self.type is not int:
            raise ConfigError(f"field {name!r}: a reference contains a record id, so its type must be int")

    def convert(self, name: str, value: Any) -> Any:
        """Return ``value`` checked against the field's type; raise InvalidRequest naming the field."""
        if value is None:
            return None
        if self.type is float and type(value) is int:
            return float(value)
        if self.type is object:
            return codec.check_json_value(value, f"field {name!r}")
        if type(value) is not self.type:
            raise InvalidRequest(
                f"invalid value for field {name!r}: expected {self.type.__name__}, got {type(value).__name__}"
            )
        if self.type is int:
            return codec.check_bigint(value, f"field {name!r}")
        if self.type is str:
            return codec.check_text(value, f"field {name!r}")
        if self.type in (dict, list):
            return codec.check_json_value(value, f"field {name!r}")
        return value

    def comparison_key(self, value: Any) -> str | None:
        """Return the text that unique checks compare for ``value``; None for a missing value."""
        if value is None:
            return None
        if self.type is str and not self.case_sensitive:
            return unicodedata.normalize("NFC", value).casefold()
        return codec.encode_value(value)


@dataclass(frozen=True)
class Entity:
    """The entity a service owns: a name and its fields.

    ``hot_ttl_s`` is how long the Redis copy of a record lives after it was
    last written or read; None keeps it until Redis evicts or loses it.
    Records nobody reads for that long are then read from PostgreSQL.
    """

    name: str
    fields: dict[str, Field] = field(default_factory=dict)
    hot_ttl_s: float | None = None

    def __post_init__(self) -> None:
        if not _ENTITY_NAME.match(self.name) or self.name.startswith("vv_"):
            raise ConfigError(
                f"invalid entity name {self.name!r}: use lowercase letters, digits, '-' and '_', "
                "start with a letter, at most 48 characters, and do not start with 'vv_'"
            )
        for name, declared in self.fields.items():
            declared.check_declaration(name)
        if self.hot_ttl_s is not None and self.hot_ttl_s <= 0:
            raise ConfigError(f"entity {self.name!r}: hot_ttl_s must be positive or None, got {self.hot_ttl_s!r}")

    @property
    def unique_fields(self) -> list[str]:
        return [name for name, declared in self.fields.items() if declared.unique]

    @property
    def hashed_fields(self) -> list[str]:
        return [name for name, declared in self.fields.items() if declared.hashed]

    @property
    def public_fields(self) -> list[str]:
        """Fields that reads and events carry: all except hashed ones."""
        return [name for name, declared in self.fields.items() if not declared.hashed]

    def unique_index_name(self, field_name: str) -> str:
        """PostgreSQL name of the unique index on ``field_name``, at most 63 bytes."""
        name = f"{self.name}_{field_name}_unique"
        if len(name) <= _POSTGRES_IDENTIFIER_MAX:
            return name
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        return name[: _POSTGRES_IDENTIFIER_MAX - 9] + "_" + digest

    def field_of_index(self, index_name: str | None) -> str | None:
        """Return the field whose unique index is ``index_name``."""
        for name in self.unique_fields:
            if self.unique_index_name(name) == index_name:
                return name
        return None

    def check_new(self, values: dict[str, Any]) -> dict[str, Any]:
        """Return a full, converted record for an add; raise InvalidRequest naming the field."""
        self._reject_unknown(values)
        record = {}
        for name, declared in self.fields.items():
            value = declared.convert(name, values.get(name, declared.default))
            if value is None and declared.required:
                raise InvalidRequest(f"missing required field {name!r} of {self.name}")
            record[name] = value
        return record

    def check_changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Return converted changes for an update; raise InvalidRequest naming the field."""
        self._reject_unknown(changes)
        if not changes:
            raise InvalidRequest(f"update of {self.name} without changes: pass at least one field")
        converted = {}
        for name, value in changes.items():
            declared = self.fields[name]
            converted[name] = declared.convert(name, value)
            if converted[name] is None and declared.required:
                raise InvalidRequest(f"field {name!r} of {self.name} is required and cannot be set to None")
        return converted

    def _reject_unknown(self, values: dict[str, Any]) -> None:
        unknown = sorted(set(values) - set(self.fields))
        if unknown:
            known = ", ".join(self.fields) or "(none)"
            raise InvalidRequest(f"unknown field {unknown[0]!r} for {self.name}; its fields are: {known}")
