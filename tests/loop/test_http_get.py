"""HttpGet against a local server: framings, timeout, refused port, DNS failure."""

from __future__ import annotations

import socket
import time

import pytest

from vv.loop import HttpGet

from .http_server import CHUNKS, refused_port


def drive(request: HttpGet, max_turns: int = 5_000_000):
    """Call advance() until the request ends; return the result and the number of calls."""
    for turn in range(1, max_turns + 1):
        if request.advance():
            return request.result, turn
    raise AssertionError(f"request not done after {max_turns} advance() calls")


def test_content_length_response_with_query(http_server):
    request = HttpGet("127.0.0.1", http_server.port, "/normal", [("q", "coffee"), ("limit", "5")], timeout_s=5)

    result, _ = drive(request)

    assert result.error is None
    assert result.code == 200
    assert result.status == "OK"
    assert result.protocol == "HTTP/1.1"
    assert result.body == b"target=/normal?q=coffee&limit=5"
    assert result.content_length == len(result.body)
    assert ("content-length", str(len(result.body))) in result.headers


def test_chunked_response_over_many_turns(http_server):
    request = HttpGet("127.0.0.1", http_server.port, "/chunked", timeout_s=5)

    result, turns = drive(request)

    assert result.code == 200
    assert result.body == b"".join(CHUNKS)
    assert ("transfer-encoding", "chunked") in result.headers
    assert turns > 10  # the chunks arrive 10 ms apart, so advance() returned early many times


def test_body_until_close(http_server):
    result, _ = drive(HttpGet("127.0.0.1", http_server.port, "/close", timeout_s=5))

    assert result.protocol == "HTTP/1.0"
    assert result.code == 200
    assert result.body == b"read until the server closes"


def test_not_found_is_a_response(http_server):
    result, _ = drive(HttpGet("127.0.0.1", http_server.port, "/nothing-here", timeout_s=5))

    assert result.ok
    assert result.code == 404
    assert result.status == "Not Found"


def test_silent_server_times_out_with_408(http_server):
    started = time.monotonic()
    result, _ = drive(HttpGet("127.0.0.1", http_server.silent_port, "/", timeout_s=0.3))

    assert result.code == 408
    assert result.status == "Request Timeout"
    assert "within 0.3 s" in result.error
    assert "reading the response" in result.error
    assert time.monotonic() - started >= 0.3


def test_refused_port_is_a_connection_error():
    port = refused_port()

    result, _ = drive(HttpGet("127.0.0.1", port, "/", timeout_s=5))

    assert result.code is None
    assert result.error == f"connection to 127.0.0.1:{port} failed: [Errno 111] Connection refused"


def test_dns_failure_is_an_error(monkeypatch):
    # The resolver is replaced so that the test never sends a DNS query.
    def fail_lookup(host, port, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail_lookup)

    result, _ = drive(HttpGet("no-such-host.test", 80, "/", timeout_s=5))

    assert result.code is None
    assert result.error == "DNS lookup for host 'no-such-host.test' failed: Name or service not known"


def test_localhost_name_resolves(http_server):
    result, _ = drive(HttpGet("localhost", http_server.port, "/normal", timeout_s=5))

    assert result.code == 200


def test_invalid_arguments():
    with pytest.raises(ValueError, match="invalid path 'normal'"):
        HttpGet("127.0.0.1", 80, "normal")
    with pytest.raises(ValueError, match="invalid timeout_s 0"):
        HttpGet("127.0.0.1", 80, "/", timeout_s=0)
    with pytest.raises(ValueError, match="invalid request for 127.0.0.1:80/a b"):
        HttpGet("127.0.0.1", 80, "/a b")
