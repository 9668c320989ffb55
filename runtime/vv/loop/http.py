"""A non-blocking HTTP/1.x GET that advances a little on each call.

``HttpGet.advance()`` does not block: each call polls the request's own
``select.epoll`` object with a zero timeout and does a small step of work
(check the DNS lookup, finish connecting, send, or read once). Host names
are resolved in a background thread, because getaddrinfo blocks. It
returns True when ``result`` is set, so a VLoop step can call it on every
turn while other steps run::

    request = HttpGet("127.0.0.1", 8080, "/health", timeout_s=5)

    def fetch(state, finish):
        if request.advance():
            state["result"] = request.result
            finish()

h11 parses the response, so bodies framed by Content-Length, chunked
encoding or the server closing the connection are all read. A request that
has no complete response by its deadline ends with code 408; a DNS or
connection failure ends with ``code`` None and ``error`` saying what failed.
"""

from __future__ import annotations

import enum
import errno
import os
import select
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from urllib.parse import urlencode

import h11

from ._select import LoopUnavailable

# Bytes read per advance() call: one recv of at most this size per turn.
READ_CHUNK_BYTES = 64 * 1024
USER_AGENT = "vvkit-vloop/0.1"


class Phase(enum.Enum):
    RESOLVING = "resolving the host name"
    CONNECTING = "connecting"
    SENDING = "sending the request"
    RECEIVING = "reading the response"
    DONE = "done"


@dataclass
class HttpResult:
    """The outcome of one GET: a response, a 408 timeout or a failure."""

    host: str
    port: int
    target: str
    elapsed_s: float
    code: int | None = None
    status: str = ""
    protocol: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str | None = None

    @property
    def content_length(self) -> int:
        """Number of body bytes received (after removing chunked framing)."""
        return len(self.body)

    @property
    def ok(self) -> bool:
        return self.error is None


class HttpGet:
    """One HTTP/1.x GET request, driven by repeated ``advance()`` calls."""

    def __init__(
        self,
        host: str,
        port: int = 80,
        path: str = "/",
        query: list[tuple[str, str]] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not hasattr(select, "epoll"):
            raise LoopUnavailable("HttpGet needs select.epoll, which exists only on Linux")
        if not path.startswith("/"):
            raise ValueError(f"invalid path {path!r}: start it with '/'")
        if timeout_s <= 0:
            raise ValueError(f"invalid timeout_s {timeout_s}: use a positive number of seconds")

        self.host = host
        self.port = port
        self.target = path + ("?" + urlencode(query) if query else "")
        self.timeout_s = timeout_s
        self.phase = Phase.RESOLVING
        self.result: HttpResult | None = None

        self._parser = h11.Connection(h11.CLIENT)
        self._outgoing = self._request_bytes()
        self._response: h11.Response | None = None
        self._body = bytearray()

        self._started = time.monotonic()
        self._deadline = self._started + timeout_s
        self._lookup = _resolve_in_background(host, port)
        self._addresses: list[tuple] = []
        self._connect_errors: list[str] = []
        self._epoll = select.epoll()
        self._sock: socket.socket | None = None

    def advance(self) -> bool:
        """Do one non-blocking step of work; return True when ``result`` is set."""
        if self.result is not None:
            return True
        if time.monotonic() >= self._deadline:
            self._end_timed_out()
            return True

        try:
            self._advance_phase()
        except h11.RemoteProtocolError as exc:
            self._end_failed(f"invalid HTTP response from {self.host}:{self.port}: {exc}")
        except OSError as exc:
            self._end_failed(f"connection to {self.host}:{self.port} failed while {self.phase.value}: {exc}")
        return self.result is not None

    def close(self) -> None:
        """Close the socket and the epoll object. Calling it again does nothing."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._epoll.close()

    def _advance_phase(self) -> None:
        if self.phase is Phase.RESOLVING:
            self._advance_resolving()
        elif self.phase is Phase.CONNECTING:
            self._advance_connecting()
        elif self.phase is Phase.SENDING:
            self._advance_sending()
        elif self.phase is Phase.RECEIVING:
            self._advance_receiving()

    def _ready(self) -> bool:
        return bool(self._epoll.poll(0))

    # resolving and connecting

    def _advance_resolving(self) -> None:
        if not self._lookup.done():
            return
        try:
            self._addresses = list(self._lookup.result())
        except OSError as exc:
            self._end_failed(f"DNS lookup for host {self.host!r} failed: {exc.strerror or exc}")
            return
        self._connect_next()

    def _connect_next(self) -> None:
        if not self._addresses:
            tried = "; ".join(self._connect_errors)
            self._end_failed(f"connection to {self.host}:{self.port} failed: {tried}")
            return

        family, kind, proto, _, address = self._addresses.pop(0)
        self._sock = socket.socket(family, kind, proto)
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = self._sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            self._connect_failed(code)
            return

        self._epoll.register(self._sock.fileno(), select.EPOLLOUT)
        self.phase = Phase.CONNECTING

    def _advance_connecting(self) -> None:
        if not self._ready():
            return
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._epoll.unregister(self._sock.fileno())
            self._connect_failed(code)
            return

        self.phase = Phase.SENDING

    def _connect_failed(self, code: int) -> None:
        self._connect_errors.append(f"[Errno {code}] {os.strerror(code)}")
        self._sock.close()
        self._sock = None
        self._connect_next()

    # sending and receiving

    def _request_bytes(self) -> bytes:
        # h11 validates the target and headers here, before any connection,
        # so a bad path fails in the constructor rather than mid-request.
        host_header = self.host if self.port in (80, 443) else f"{self.host}:{self.port}"
        headers = [("Host", host_header), ("User-Agent", USER_AGENT), ("Accept", "*/*"), ("Connection", "close")]
        try:
            request = h11.Request(method="GET", target=self.target, headers=headers)
            return self._parser.send(request) + self._parser.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise ValueError(f"invalid request for {self.host}:{self.port}{self.target}: {exc}") from exc

    def _advance_sending(self) -> None:
        if not self._ready():
            return
        sent = self._sock.send(self._outgoing)
        self._outgoing = self._outgoing[sent:]
        if self._outgoing:
            return

        self._epoll.modify(self._sock.fileno(), select.EPOLLIN)
        self.phase = Phase.RECEIVING

    def _advance_receiving(self) -> None:
        if not self._ready():
            return
        # An empty read is the server closing the connection: h11 takes it
        # as the end of a body framed by closing, or as an error otherwise.
        self._parser.receive_data(self._sock.recv(READ_CHUNK_BYTES))

        while self.result is None:
            event = self._parser.next_event()
            if event is h11.NEED_DATA:
                return
            self._handle_event(event)

    def _handle_event(self, event) -> None:
        if isinstance(event, h11.Response):
            self._response = event
        elif isinstance(event, h11.Data):
            self._body += event.data
        elif isinstance(event, h11.EndOfMessage):
            self._end_received()
        elif isinstance(event, h11.ConnectionClosed):
            self._end_failed(f"{self.host}:{self.port} closed the connection before a complete response")

    # results

    def _base_result(self) -> HttpResult:
        return HttpResult(
            host=self.host, port=self.port, target=self.target, elapsed_s=time.monotonic() - self._started
        )

    def _end(self, result: HttpResult) -> None:
        self.result = result
        self.phase = Phase.DONE
        self.close()

    def _end_received(self) -> None:
        response = self._response
        result = self._base_result()
        result.code = response.status_code
        result.status = response.reason.decode("latin-1")
        result.protocol = "HTTP/" + response.http_version.decode("ascii")
        result.headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers]
        result.body = bytes(self._body)
        self._end(result)

    def _end_timed_out(self) -> None:
        result = self._base_result()
        result.code = 408
        result.status = "Request Timeout"
        if self._response is not None:
            result.protocol = "HTTP/" + self._response.http_version.decode("ascii")
        result.body = bytes(self._body)
        result.error = (
            f"no complete response from {self.host}:{self.port} within {self.timeout_s} s "
            f"(timed out while {self.phase.value})"
        )
        self._end(result)

    def _end_failed(self, message: str) -> None:
        result = self._base_result()
        result.error = message
        self._end(result)


def _resolve_in_background(host: str, port: int) -> Future:
    """Start getaddrinfo for ``host`` and return a Future of its result.

    IP literals resolve at once. Names resolve in a daemon thread, because
    getaddrinfo blocks and a non-blocking request must not wait for it; a
    daemon thread also cannot keep the interpreter alive after a timeout.
    """
    future: Future = Future()
    try:
        answer = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    else:
        future.set_result(answer)
        return future

    def lookup() -> None:
        try:
            future.set_result(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            future.set_exception(exc)

    threading.Thread(target=lookup, name=f"dns-{host}", daemon=True).start()
    return future
