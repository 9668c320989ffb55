"""A small HTTP server on 127.0.0.1 for the HttpGet and example tests.

Responses are written byte for byte so that each body framing is exact:

- ``/normal``: HTTP/1.1, Content-Length, body ``target=<request target>``
- ``/chunked``: HTTP/1.1, chunked encoding, chunks sent 10 ms apart
- ``/close``: HTTP/1.0, no length, the body ends when the server closes
- ``/missing``: 404 with a Content-Length body
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time

CHUNKS = [b"first chunk, ", b"second chunk, ", b"last chunk"]


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        request_line = self.rfile.readline().decode("latin-1")
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # headers are not needed
        target = request_line.split(" ")[1]
        path = target.split("?")[0]

        if path == "/normal":
            self._send_length(200, "OK", f"target={target}".encode())
        elif path == "/chunked":
            self._send_chunked()
        elif path == "/close":
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nread until the server closes")
        else:
            self._send_length(404, "Not Found", b"no such path")

    def _send_length(self, code: int, reason: str, body: bytes) -> None:
        head = f"HTTP/1.1 {code} {reason}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        self.wfile.write(head.encode() + body)

    def _send_chunked(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for chunk in CHUNKS:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            time.sleep(0.01)
        self.wfile.write(b"0\r\n\r\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class LocalHttpServer:
    """The server above, plus a listener that accepts nothing and so never responds."""

    def __enter__(self) -> LocalHttpServer:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

        # The kernel completes the TCP handshake from the backlog, so a client
        # connects and sends, but no response ever comes.
        self._silent = socket.socket()
        self._silent.bind(("127.0.0.1", 0))
        self._silent.listen(8)
        self.silent_port = self._silent.getsockname()[1]
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._silent.close()


def refused_port() -> int:
    """Return a loopback port with nothing listening on it."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port
