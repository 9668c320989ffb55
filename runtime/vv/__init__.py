"""vv: the runtime that vvkit services import.

A service is a subclass of ``Service`` whose methods are marked with ``rpc``
(callable from other services, and from the HTTP gateway when ``http=``
lists HTTP methods) and ``subscribe`` (handlers of other services' events). ``Client`` calls
services from outside. ``vv-start`` runs a service; ``vv.testing`` runs one
inside a test.
"""

from vv._config import TransportSettings
from vv._errors import (
    ConfigError,
    Conflict,
    DeadLettered,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    QueueFullError,
    RemoteError,
    RequestTimeout,
    StorageError,
    StorageUnavailable,
    TransportError,
    VVError,
)
from vv._events import subscribe
from vv._keys import ServiceKeys
from vv._rpc import Client, rpc
from vv._service import Service
from vv.storage import Entity, Field

__all__ = [
    "Client",
    "ConfigError",
    "Conflict",
    "DeadLettered",
    "Entity",
    "Field",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "QueueFullError",
    "RemoteError",
    "RequestTimeout",
    "Service",
    "ServiceKeys",
    "StorageError",
    "StorageUnavailable",
    "TransportError",
    "TransportSettings",
    "VVError",
    "rpc",
    "subscribe",
]
