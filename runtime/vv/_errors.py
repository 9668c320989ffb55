"""Exceptions raised by the vv runtime.

Every error that the runtime raises derives from ``VVError``. Errors that
travel between services carry an HTTP-like ``code`` so that a caller, the
``vvkit call`` command and the HTTP gateway can map them without a table of
their own::

    VVError
    ├── ConfigError                 invalid service declaration or vv-start setting
    ├── TransportError              Redis cannot be reached or refused a command
    │   └── QueueFullError          the target's request stream is at its cap
    ├── RemoteError                 code 500: a handler raised; carries code and text
    │   ├── InvalidRequest          code 400: arguments or a record failed validation
    │   ├── NotFound                code 404: unknown service, method or record
    │   ├── MethodNotAllowed        code 405: the HTTP method is not accepted
    │   ├── Conflict                code 409: a unique value is already taken
    │   ├── DeadLettered            code 500: delivery failed too often, sent to the dead-letter stream
    │   ├── StorageUnavailable      code 503: PostgreSQL cannot be reached in time
    │   └── RequestTimeout          code 504: no reply before the deadline
    └── StorageError                PostgreSQL refused a statement for a reason other than the above

``RemoteError`` subclasses are both raised inside a service (a handler may
raise ``NotFound`` to answer 404) and rebuilt on the caller's side from the
reply's ``code`` by ``error_from_reply``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "Conflict",
    "DeadLettered",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "QueueFullError",
    "RemoteError",
    "RequestTimeout",
    "StorageError",
    "StorageUnavailable",
    "TransportError",
    "VVError",
    "error_from_reply",
]


class VVError(Exception):
    """Root of every exception that the vv runtime raises."""


class ConfigError(VVError):
    """A service declaration or a vv-start setting is invalid."""


class TransportError(VVError):
    """Redis could not be reached or rejected a command."""


class QueueFullError(TransportError):
    """The target's request stream contains its maximum of unread requests."""


class StorageError(VVError):
    """PostgreSQL rejected a statement for a reason vv does not map."""


class RemoteError(VVError):
    """An error that travels in an RPC reply, with an HTTP-like code."""

    code = 500

    def __init__(self, text: str, *, code: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        if code is not None:
            self.code = code

    def to_reply(self) -> dict[str, object]:
        """Return the ``error`` object of the reply that carries this error.

        ``type`` names the class so that errors sharing a code (RemoteError
        and DeadLettered are both 500) are rebuilt as the same class.
        """
        return {"code": self.code, "text": self.text, "type": type(self).__name__}


class InvalidRequest(RemoteError):
    code = 400


class NotFound(RemoteError):
    code = 404


class MethodNotAllowed(RemoteError):
    code = 405


class Conflict(RemoteError):
    code = 409


class DeadLettered(RemoteError):
    code = 500


class StorageUnavailable(RemoteError):
    code = 503


class RequestTimeout(RemoteError):
    code = 504


_ERRORS_BY_CODE: dict[int, type[RemoteError]] = {
    cls.code: cls
    for cls in (InvalidRequest, NotFound, MethodNotAllowed, Conflict, StorageUnavailable, RequestTimeout)
}


_ERRORS_BY_NAME: dict[str, type[RemoteError]] = {
    cls.__name__: cls for cls in (RemoteError, DeadLettered, *_ERRORS_BY_CODE.values())
}


def error_from_reply(error: dict[str, object]) -> RemoteError:
    """Rebuild the exception that a reply's ``error`` object describes.

    The class comes from ``type`` when it names a known class, else from
    ``code``; an unknown code gives a RemoteError carrying that code.
    """
    code = error.get("code", 500)
    text = str(error.get("text", "remote error without text"))
    if not isinstance(code, int):
        code = 500
    cls = _ERRORS_BY_NAME.get(str(error.get("type")), None) or _ERRORS_BY_CODE.get(code, RemoteError)
    return cls(text, code=code)
