"""Event loops for vv services and the VLoop scheduler.

- ``install(name)`` / ``new_event_loop(name)`` / ``resolve(name)``: choose
  the asyncio event loop by a ``VV_LOOP`` value (asyncio, epoll, uvloop, auto).
- ``EpollEventLoop``: an asyncio event loop on ``select.epoll`` (Linux).
- ``VLoop``: a cooperative round-robin scheduler of named steps.
- ``HttpGet``: a non-blocking HTTP/1.x GET that a VLoop step advances.
"""

import importlib

from ._select import AUTO_ORDER, LOOP_NAMES, LoopUnavailable, available, install, new_event_loop, resolve

__all__ = [
    "AUTO_ORDER",
    "EpollEventLoop",
    "EpollEventLoopPolicy",
    "HttpGet",
    "HttpResult",
    "LOOP_NAMES",
    "LoopUnavailable",
    "PassLimitExceeded",
    "VLoop",
    "VLoopError",
    "available",
    "install",
    "new_event_loop",
    "resolve",
]

# Loaded on first use: vv-start imports this package to read VV_LOOP, and
# must not need select.epoll (absent off Linux) or h11 (used by HttpGet only).
_LAZY = {
    "EpollEventLoop": "._epoll",
    "EpollEventLoopPolicy": "._epoll",
    "HttpGet": ".http",
    "HttpResult": ".http",
    "PassLimitExceeded": ".vloop",
    "VLoop": ".vloop",
    "VLoopError": ".vloop",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'vv.loop' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
