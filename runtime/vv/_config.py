"""Settings of the transport and of ``vv-start``, and where they come from.

Every setting is resolved in one order: a command-line option, then an
environment variable, then the default written here. ``vv-start --help``
prints the same table.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vv._errors import ConfigError

__all__ = ["START_OPTIONS", "StartOption", "TransportSettings", "parse_bool", "resolve_start_options"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(text: str) -> bool:
    """Convert ``true``/``false`` style text, as environment variables carry it."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class TransportSettings:
    """Limits and timings of one service's or client's use of Redis.

    Field names carry their unit. ``from_env`` reads each field from
    ``VV_<FIELD>`` (for example ``VV_CLAIM_IDLE_MS``).
    """

    # Blocking reads must return before the socket timeout fires, or an idle
    # service would see timeout errors and reconnect over and over.
    socket_timeout_s: float = 15.0
    block_ms: int = 5_000
    # A delivered request or event left unacknowledged for this long is
    # claimed by another instance. An instance still working on an entry
    # renews it well before then.
    claim_idle_ms: int = 30_000
    # After this many deliveries an entry goes to the dead-letter stream.
    max_deliveries: int = 3
    max_concurrency: int = 64
    read_count: int = 100
    # Unread plus pending requests a service's stream may hold before callers
    # get QueueFullError. Acknowledged requests are deleted, so the cap never
    # trims a request that is still waiting.
    max_queue_len: int = 10_000
    # Event streams are shared by every subscriber, so they are trimmed
    # approximately at this length instead.
    max_events_len: int = 100_000
    max_dead_letters_len: int = 10_000
    max_request_bytes: int = 1 << 20
    default_timeout_s: float = 10.0
    # Reply lists whose reader is gone (the caller died) expire after this long.
    reply_ttl_s: int = 60
    # First-connection retries in vv-start and reconnect backoff.
    connect_timeout_s: float = 60.0
    backoff_max_s: float = 2.0

    def __post_init__(self) -> None:
        if self.block_ms >= self.socket_timeout_s * 1000:
            raise ConfigError(
                f"block_ms={self.block_ms} must be shorter than socket_timeout_s={self.socket_timeout_s} "
                "so that blocking reads return before the socket times out"
            )
        for item in dataclasses.fields(self):
            if getattr(self, item.name) <= 0:
                raise ConfigError(f"transport setting {item.name} must be positive, got {getattr(self, item.name)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> TransportSettings:
        """Build settings from ``VV_<FIELD>`` variables, then ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            name = "VV_" + item.name.upper()
            if name in environ:
                cast = float if item.type in ("float", float) else int
                try:
                    values[item.name] = cast(environ[name])
                except ValueError as exc:
                    raise ConfigError(f"invalid {name}={environ[name]!r}: expected a number") from exc
        values.update({key: value for key, value in overrides.items() if value is not None})
        unknown = set(values) - {item.name for item in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown transport settings: {', '.join(sorted(unknown))}")
        return cls(**values)


@dataclass(frozen=True)
class StartOption:
    """One ``vv-start`` setting: its option, its environment variable and default."""

    name: str
    env: str
    default: Any
    help: str
    cast: Callable[[str], Any] = str
    flag: bool = False
    choices: tuple[str, ...] = field(default=())

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


START_OPTIONS: tuple[StartOption, ...] = (
    StartOption("service", "SERVICE_NAME", None,
                "component folder (services/<app>/<component>) or module:Class to run"),
    StartOption("app", "APP", None, "app the service belongs to (default: the folder above the component)"),
    StartOption("component", "COMPONENT", None, "component name (default: the folder name or the class's)"),
    StartOption("transport", "TRANSPORT", "redis://127.0.0.1:6379/0",
                "Redis URI: redis:// or rediss://, with user and password if needed"),
    StartOption("redis_cluster", "CLUSTER", False, "connect to a Redis Cluster", cast=parse_bool, flag=True),
    StartOption("library", "LIBRARY", None, "extra folders to import from, separated by ':'"),
    StartOption("database", "DATABASE", None, "PostgreSQL DSN for the service's storage"),
    StartOption("log_level", "LOG_LEVEL", "INFO", "logging level",
                choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    StartOption("log_format", "LOG_FORMAT", "text", "log line format", choices=("text", "json")),
    StartOption("loop", "VV_LOOP", "asyncio", "event loop",
                choices=("asyncio", "epoll", "uvloop", "auto")),
    StartOption("concurrency", "VV_MAX_CONCURRENCY", 64, "requests and events handled at once per instance",
                cast=int),
)


def resolve_start_options(given: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Resolve every start option: command line, then environment, then default.

    ``given`` maps option names to values from the command line, with None
    for options not given.
    """
    environ = os.environ if environ is None else environ
    resolved: dict[str, Any] = {}
    for option in START_OPTIONS:
        value = given.get(option.name)
        if value is None and environ.get(option.env, "") != "":
            try:
                value = option.cast(environ[option.env])
            except ValueError as exc:
                raise ConfigError(f"invalid {option.env}={environ[option.env]!r}: {exc}") from exc
        if value is None:
            value = option.default
        if option.choices and value is not None:
            value = str(value)
            if option.name == "log_level":
                value = value.upper()
            if value not in option.choices:
                raise ConfigError(f"invalid {option.option} {value!r}: use one of {', '.join(option.choices)}")
        resolved[option.name] = value
    return resolved
