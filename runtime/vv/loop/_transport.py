"""The TCP transport of the epoll loop.

It is asyncio's selector socket transport with a shorter per-event path:

- reads: the loop calls the reader for the protocol's kind directly,
  without asyncio's forwarding call, and the read size is a module constant
  rather than the class attribute ``max_size``, whose lookup CPython 3.11
  does not specialize (about 250 instructions per read, counted with
  callgrind). ``recv()`` of the full size runs fewer instructions than
  ``recv_into()`` a shared buffer and a copy of the bytes received, because
  CPython only shrinks the new bytes object, while the copy needs a
  memoryview slice and a second object (counted with callgrind on the echo
  benchmark, CPython 3.11).
- writes: bytes written to an empty buffer go straight to ``send()``;
  anything else takes asyncio's path unchanged.
"""

from __future__ import annotations

from asyncio import selector_events

# Bytes read per readiness event, the same maximum as asyncio's transport.
READ_BYTES = 256 * 1024


class EpollSocketTransport(selector_events._SelectorSocketTransport):
    """asyncio's selector socket transport with a shorter read and write path."""

    def set_protocol(self, protocol) -> None:
        super().set_protocol(protocol)

        # asyncio registers `_read_ready`, which only forwards to the reader
        # for the protocol's kind. Registering that reader itself saves a call
        # per read; re-register when a new protocol changes it while reading.
        self._read_ready = self._read_ready_cb
        if self._loop._has_reader_for(self._sock_fd):
            self._add_reader(self._sock_fd, self._read_ready)

    def _read_ready__data_received(self):
        if self._conn_lost:
            return
        try:
            data = self._sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return

        if not data:
            self._read_ready__on_eof()
            return

        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")

    def write(self, data):
        # Fast path for the common case: bytes, an open connection and an
        # empty buffer, so the data goes straight to send(). Everything else,
        # including a partial send, takes asyncio's own path, which checks
        # the arguments and buffers the rest for the writer callback.
        if type(data) is not bytes or self._buffer or self._conn_lost or self._eof or self._empty_waiter is not None:
            return super().write(data)
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal write error on socket transport")
            return
        if sent < len(data):
            super().write(data[sent:])
