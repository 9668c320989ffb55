"""The asyncio event loop on ``select.epoll``.

``EpollEventLoop`` keeps asyncio's public API by inheriting the Unix
selector loop's glue (signals through ``signal.set_wakeup_fd``, subprocesses,
pipes, ``sock_*`` methods, servers, executors, TLS) and replaces the parts that
run on every turn:

- the readiness core: one ``select.epoll`` object and a dict from file
  descriptor to its reader and writer handles, with no ``selectors`` key
  objects in between;
- the turn itself (``_run_once``): poll, run the ``call_soon`` queue, then
  run I/O callbacks and due timers straight from the poll result and the
  timer heap instead of queueing them first;
- ``call_soon`` / ``call_at`` without the debug checks when debug is off;
- TCP transports with a shorter read path and a direct send (``_transport.py``).

Ordering follows asyncio: callbacks run in the order they were scheduled,
I/O callbacks found by a poll run after the callbacks that were already
queued, and a callback scheduled during a turn runs on the next turn. In
debug mode the loop runs asyncio's own turn, with its slow-callback checks.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import select
import selectors
from asyncio import events
from time import monotonic

from ._select import LoopUnavailable
from ._transport import EpollSocketTransport

# Same bound as asyncio (base_events.MAXIMUM_SELECT_TIMEOUT): a poll never
# sleeps longer than a day, so clock jumps cannot stall a loop for ever.
MAX_POLL_TIMEOUT_S = 24 * 3600

# Like asyncio, rebuild the timer heap when more than half of at least 100
# timers are cancelled, so cancelled timeouts cannot grow it without bound.
MIN_TIMERS_FOR_CLEANUP = 100
CANCELLED_TIMERS_FRACTION = 0.5

# Events read per poll. More ready descriptors stay queued in the kernel
# and come back on the next poll.
MAX_EVENTS_PER_POLL = 1024

_READ_FLAGS = select.EPOLLIN | select.EPOLLPRI | select.EPOLLERR | select.EPOLLHUP | select.EPOLLRDHUP
_WRITE_FLAGS = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP
# Flags of a readable-only event, by far the most common kind.
_READABLE_ONLY = select.EPOLLIN

_new_object = object.__new__


class _Registration:
    """The reader and writer handles of one file descriptor."""

    __slots__ = ("fileobj", "mask", "reader", "writer")

    def __init__(self, fileobj) -> None:
        self.fileobj = fileobj
        self.mask = 0
        self.reader: events.Handle | None = None
        self.writer: events.Handle | None = None


def _fileno(fileobj) -> int:
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        fd = int(fileobj.fileno())
    if fd < 0:
        raise ValueError(f"invalid file descriptor: {fd}")
    return fd


class EpollSelector(selectors.BaseSelector):
    """The epoll registry, also usable through the ``selectors`` interface.

    The loop reads ``registrations`` directly. The ``selectors`` methods
    exist because inherited asyncio code inspects ``loop._selector`` (for
    example in transport ``repr``).
    """

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.registrations: dict[int, _Registration] = {}
        # Descriptors added to epoll since the last poll. An event of that
        # poll for one of them belongs to whatever had the number before.
        self.added_since_poll: set[int] = set()

    def poll(self, timeout_s: float) -> list[tuple[int, int]]:
        """Wait up to ``timeout_s`` (-1: no limit) and return ``(fd, epoll flags)`` pairs."""
        self.added_since_poll.clear()
        return self.epoll.poll(timeout_s, MAX_EVENTS_PER_POLL)

    def update(self, fd: int, registration: _Registration, mask: int) -> None:
        """Set the events watched on ``fd``; a mask of 0 unregisters it."""
        if mask == 0:
            self.registrations.pop(fd, None)
            registration.mask = 0
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass  # closed by its owner before this call: the kernel dropped it already
            return

        if registration.mask == 0:
            self.epoll.register(fd, _epoll_flags(mask))
            self.registrations[fd] = registration
            self.added_since_poll.add(fd)
        else:
            self._modify(fd, mask)
        registration.mask = mask

    def _modify(self, fd: int, mask: int) -> None:
        try:
            self.epoll.modify(fd, _epoll_flags(mask))
        except FileNotFoundError:
            # The descriptor was closed without being unregistered and its
            # number reused, so the kernel no longer watches it.
            self.epoll.register(fd, _epoll_flags(mask))

    # selectors.BaseSelector interface

    def register(self, fileobj, events, data=None):
        fd = _fileno(fileobj)
        if fd in self.registrations:
            raise KeyError(f"{fileobj!r} (fd {fd}) is already registered")
        registration = _Registration(fileobj)
        registration.reader, registration.writer = data or (None, None)
        self.update(fd, registration, events)
        return self.get_key(fileobj)

    def unregister(self, fileobj):
        key = self.get_key(fileobj)
        self.update(key.fd, self.registrations[key.fd], 0)
        return key

    def modify(self, fileobj, events, data=None):
        fd = _fileno(fileobj)
        registration = self.registrations[fd]
        registration.reader, registration.writer = data or (None, None)
        self.update(fd, registration, events)
        return self.get_key(fileobj)

    def select(self, timeout=None):
        # Used only by asyncio's own _run_once, which the loop runs in debug mode.
        timeout_s = -1 if timeout is None else max(timeout, 0)
        try:
            ready_events = self.poll(timeout_s)
        except InterruptedError:
            return []

        ready = []
        for fd, flags in ready_events:
            registration = self.registrations.get(fd)
            if registration is None:
                continue
            mask = 0
            if flags & _READ_FLAGS:
                mask |= selectors.EVENT_READ
            if flags & _WRITE_FLAGS:
                mask |= selectors.EVENT_WRITE
            ready.append((self.get_key(fd), mask & registration.mask))
        return ready

    def get_key(self, fileobj):
        fd = _fileno(fileobj)
        registration = self.registrations[fd]
        data = (registration.reader, registration.writer)
        return selectors.SelectorKey(registration.fileobj, fd, registration.mask, data)

    def get_map(self):
        return {fd: self.get_key(fd) for fd in self.registrations}

    def close(self) -> None:
        self.registrations.clear()
        self.epoll.close()


def _epoll_flags(mask: int) -> int:
    flags = 0
    if mask & selectors.EVENT_READ:
        flags |= select.EPOLLIN
    if mask & selectors.EVENT_WRITE:
        flags |= select.EPOLLOUT
    return flags


class _FastHandle(events.Handle):
    """A Handle that ``call_soon`` fills in place when debug is off.

    ``call_soon`` creates it with ``object.__new__`` and sets every slot of
    ``events.Handle`` itself, which saves the Python frames of ``__init__``
    and asyncio's debug lookup (about 500 instructions per call, counted with
    callgrind on CPython 3.11).
    """

    __slots__ = ()


class EpollEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose readiness core is ``select.epoll``."""

    def __new__(cls, *args, **kwargs):
        # Checked before the instance exists, because asyncio's __del__
        # expects a fully built loop.
        if not hasattr(select, "epoll"):
            raise LoopUnavailable(
                "event loop 'epoll' needs select.epoll, which exists only on Linux: "
                "set VV_LOOP to asyncio or auto"
            )
        return super().__new__(cls)

    def __init__(self) -> None:
        self._poller = EpollSelector()
        self._registrations = self._poller.registrations
        super().__init__(selector=self._poller)

    # call_soon queue and timer heap

    def call_soon(self, callback, *args, context=None):
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            return super().call_soon(callback, *args, context=context)

        handle = _new_object(_FastHandle)
        handle._context = contextvars.copy_context() if context is None else context
        handle._loop = self
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._repr = None
        handle._source_traceback = None
        self._ready.append(handle)
        return handle

    def call_at(self, when, callback, *args, context=None):
        if self._debug or when is None:
            return super().call_at(when, callback, *args, context=context)
        if self._closed:
            raise RuntimeError("Event loop is closed")

        timer = events.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    # readiness registration

    def _add_reader(self, fd, callback, *args):
        self._check_closed()
        return self._add_handle(fd, callback, args, selectors.EVENT_READ)

    def _add_writer(self, fd, callback, *args):
        self._check_closed()
        return self._add_handle(fd, callback, args, selectors.EVENT_WRITE)

    def _remove_reader(self, fd):
        if self.is_closed():
            return False
        return self._remove_handle(fd, selectors.EVENT_READ)

    def _remove_writer(self, fd):
        if self.is_closed():
            return False
        return self._remove_handle(fd, selectors.EVENT_WRITE)

    def _add_handle(self, fileobj, callback, args, event: int) -> events.Handle:
        fd = _fileno(fileobj)
        registration = self._registrations.get(fd) or _Registration(fileobj)
        if not registration.mask & event:
            self._poller.update(fd, registration, registration.mask | event)

        handle = events.Handle(callback, args, self, None)
        if event == selectors.EVENT_READ:
            previous, registration.reader = registration.reader, handle
        else:
            previous, registration.writer = registration.writer, handle
        if previous is not None:
            previous.cancel()
        return handle

    def _remove_handle(self, fileobj, event: int) -> bool:
        fd = _fileno(fileobj)
        registration = self._registrations.get(fd)
        if registration is None:
            return False

        if event == selectors.EVENT_READ:
            previous, registration.reader = registration.reader, None
        else:
            previous, registration.writer = registration.writer, None
        if registration.mask & event:
            self._poller.update(fd, registration, registration.mask & ~event)

        if previous is None:
            return False
        previous.cancel()
        return True

    def _has_reader_for(self, fd: int) -> bool:
        registration = self._registrations.get(fd)
        return registration is not None and registration.reader is not None and not registration.reader._cancelled

    # one turn of the loop

    def _run_once(self):
        if self._debug:
            return super()._run_once()

        # The order within a turn is asyncio's: callbacks queued before the
        # turn, then I/O callbacks in the order the poll reported them, then
        # due timers. Callbacks that these schedule wait for the next turn.
        # I/O and timer callbacks run straight from here instead of passing
        # through the ready queue, which saves a queue round trip per event.
        queued = len(self._ready)
        timeout_s = self._poll_timeout_s()
        try:
            ready_events = self._poller.poll(timeout_s)
        except InterruptedError:
            ready_events = ()

        if queued:
            self._run_ready(queued)
        if ready_events:
            self._run_io_callbacks(ready_events)
        if self._scheduled:
            self._run_due_timers()

    def _poll_timeout_s(self) -> float:
        scheduled = self._scheduled
        self._drop_cancelled_timers()
        if self._ready or self._stopping:
            return 0
        if not scheduled:
            return -1
        return min(max(0.0, scheduled[0]._when - monotonic()), MAX_POLL_TIMEOUT_S)

    def _drop_cancelled_timers(self) -> None:
        scheduled = self._scheduled
        count = len(scheduled)
        if count > MIN_TIMERS_FOR_CLEANUP and self._timer_cancelled_count / count > CANCELLED_TIMERS_FRACTION:
            kept = []
            for timer in scheduled:
                if timer._cancelled:
                    timer._scheduled = False
                else:
                    kept.append(timer)
            heapq.heapify(kept)
            self._scheduled = kept
            self._timer_cancelled_count = 0
            return

        while scheduled and scheduled[0]._cancelled:
            self._timer_cancelled_count -= 1
            timer = heapq.heappop(scheduled)
            timer._scheduled = False

    def _run_io_callbacks(self, ready_events) -> None:
        # A callback may close a descriptor, and another may register the
        # reused number before the old descriptor's event comes up here.
        # A closed descriptor has no registration, and events for descriptors
        # added since the poll are skipped. Because epoll is level-triggered,
        # a skipped descriptor that is still ready is reported again.
        get = self._registrations.get
        added_since_poll = self._poller.added_since_poll
        for fd, flags in ready_events:
            registration = get(fd)
            if registration is None or (added_since_poll and fd in added_since_poll):
                continue

            # The equality tests come first: CPython 3.11 specializes `==` on
            # small ints but runs `&` through the generic number protocol, so
            # a readable-only event, the common case, takes about 250 fewer
            # instructions (counted with callgrind).
            if flags == _READABLE_ONLY or flags & _READ_FLAGS:
                handle = registration.reader
                if handle is not None and not handle._cancelled:
                    # Inlined _run_handle: this is the per-event path, and a
                    # Python call costs about 0.1 us.
                    try:
                        args = handle._args
                        if args:
                            handle._context.run(handle._callback, *args)
                        else:
                            handle._context.run(handle._callback)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        self._report_callback_error(handle, exc)
            if flags != _READABLE_ONLY and flags & _WRITE_FLAGS:
                handle = registration.writer
                if handle is not None and not handle._cancelled:
                    self._run_handle(handle)

    def _run_due_timers(self) -> None:
        scheduled = self._scheduled
        if not scheduled:
            return
        end_time = monotonic() + self._clock_resolution
        due = []
        while scheduled and scheduled[0]._when < end_time:
            timer = heapq.heappop(scheduled)
            timer._scheduled = False
            due.append(timer)
        for timer in due:
            if not timer._cancelled:
                self._run_handle(timer)

    def _run_ready(self, count: int) -> None:
        popleft = self._ready.popleft
        for _ in range(count):
            handle = popleft()
            if not handle._cancelled:
                self._run_handle(handle)

    def _run_handle(self, handle: events.Handle) -> None:
        # `run(callback, *args)` builds a list and a tuple on every call, so
        # the usual argument counts of 0 and 1 get calls of their own.
        args = handle._args
        try:
            if not args:
                handle._context.run(handle._callback)
            elif len(args) == 1:
                handle._context.run(handle._callback, args[0])
            else:
                handle._context.run(handle._callback, *args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report_callback_error(handle, exc)

    def _report_callback_error(self, handle: events.Handle, exc: BaseException) -> None:
        callback = events.format_helpers._format_callback_source(handle._callback, handle._args)
        context = {
            "message": f"Exception in callback {callback}",
            "exception": exc,
            "handle": handle,
        }
        if handle._source_traceback:
            context["source_traceback"] = handle._source_traceback
        self.call_exception_handler(context)

    # transports

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        return EpollSocketTransport(self, sock, protocol, waiter, extra, server)



class EpollEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The default Unix policy, creating ``EpollEventLoop`` loops."""

    _loop_factory = EpollEventLoop
