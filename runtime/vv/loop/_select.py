"""Choosing an event loop by name: ``VV_LOOP`` and ``vv-start --loop``.

Names: ``asyncio`` (the standard library's loop), ``epoll`` (this package's
loop, Linux only), ``uvloop`` (needs the ``uvloop`` package) and ``auto``,
which takes the first available loop of ``AUTO_ORDER``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import select

from vv._errors import ConfigError

LOOP_NAMES = ("asyncio", "epoll", "uvloop", "auto")

# Fastest first, by echo messages per CPU second in the run of
# `bench/loop.py --duration 3 --rounds 5 --raw-floor` recorded in bench/RESULTS.md,
# section "loop": uvloop 1.17x, epoll 1.11x, asyncio 1.00x.
# Re-run the benchmark and update this order when a loop changes.
AUTO_ORDER = ("uvloop", "epoll", "asyncio")


class LoopUnavailable(ConfigError):
    """The requested event loop cannot run on this platform or install."""


def available(name: str) -> bool:
    """Return whether the loop called ``name`` can be created here."""
    if name == "epoll":
        return hasattr(select, "epoll")
    if name == "uvloop":
        return importlib.util.find_spec("uvloop") is not None
    return name == "asyncio"


def resolve(name: str | None) -> str:
    """Return the concrete loop name for a ``VV_LOOP`` value.

    An empty value or None means ``asyncio``. ``auto`` never fails because
    ``asyncio`` is always available; ``epoll`` and ``uvloop`` raise
    ``LoopUnavailable`` when they cannot run here.
    """
    value = (name or "asyncio").strip().lower()
    if value not in LOOP_NAMES:
        raise ConfigError(f"invalid event loop {name!r}: use one of {', '.join(LOOP_NAMES)}")

    if value == "auto":
        return next(candidate for candidate in AUTO_ORDER if available(candidate))
    if available(value):
        return value

    if value == "epoll":
        raise LoopUnavailable(
            "event loop 'epoll' needs select.epoll, which exists only on Linux: "
            "set VV_LOOP to asyncio or auto"
        )
    raise LoopUnavailable("event loop 'uvloop' needs the uvloop package: pip install uvloop, or set VV_LOOP to auto")


def new_event_loop(name: str | None) -> asyncio.AbstractEventLoop:
    """Create a new, not yet running, event loop of the named kind."""
    resolved = resolve(name)
    if resolved == "epoll":
        from ._epoll import EpollEventLoop

        return EpollEventLoop()
    if resolved == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.SelectorEventLoop()


def install(name: str | None) -> str:
    """Make ``asyncio.run`` and ``asyncio.new_event_loop`` use the named loop.

    Sets the event loop policy of this process and returns the resolved name,
    which vv-start logs at startup.
    """
    resolved = resolve(name)
    asyncio.set_event_loop_policy(_policy(resolved))
    return resolved


def _policy(resolved: str) -> asyncio.AbstractEventLoopPolicy:
    if resolved == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    if resolved == "epoll":
        from ._epoll import EpollEventLoopPolicy

        return EpollEventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()
