"""Conformance of the epoll loop to asyncio's event loop API.

Every test runs on each available loop: passing on asyncio and uvloop shows
that the test expects standard behaviour, passing on epoll shows that the
epoll loop has it.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from vv.loop import available, new_event_loop

LOOPS = [name for name in ("asyncio", "epoll", "uvloop") if available(name)]
TIMEOUT_S = 10


@pytest.fixture(params=LOOPS)
def loop(request):
    loop = new_event_loop(request.param)
    yield loop
    if not loop.is_closed():
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def reports_removal(loop) -> bool:
    # uvloop (0.23 checked) returns None from remove_reader/remove_writer
    # instead of whether a callback was registered.
    return not type(loop).__module__.startswith("uvloop")


def set_once(future, produce):
    """Return a callback that resolves ``future`` with ``produce()`` on its first call."""

    def callback():
        if not future.done():
            future.set_result(produce())

    return callback


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT_S))


def test_timers_fire_in_order_and_not_early(loop):
    fired = []
    delays_s = [0.05, 0.01, 0.03, 0.0, 0.02, 0.01]
    for index, delay_s in enumerate(delays_s):
        due = loop.time() + delay_s
        loop.call_later(delay_s, lambda index=index, due=due: fired.append((index, due, loop.time())))

    run(loop, asyncio.sleep(0.1))

    assert [index for index, _, _ in fired] == [3, 1, 5, 4, 2, 0]
    # asyncio runs a timer up to one clock resolution before its time. uvloop
    # has no such attribute and counts in milliseconds.
    tolerance_s = getattr(loop, "_clock_resolution", 0.001)
    for index, due, at in fired:
        assert at >= due - tolerance_s, index


def test_call_soon_runs_in_fifo_order(loop):
    calls = []
    for number in range(5):
        loop.call_soon(calls.append, number)

    run(loop, asyncio.sleep(0))

    assert calls == [0, 1, 2, 3, 4]


def test_callback_scheduled_during_turn_runs_next_turn(loop):
    calls = []

    def first():
        calls.append("first")
        loop.call_soon(calls.append, "scheduled by first")

    loop.call_soon(first)
    loop.call_soon(calls.append, "second")
    run(loop, asyncio.sleep(0.01))

    assert calls == ["first", "second", "scheduled by first"]


def test_callbacks_run_in_their_context(loop):
    # call_soon, call_later and add_reader copy the current context when they
    # are called, and call_soon(context=...) runs in the given one. A value
    # set inside a callback stays in that callback's copy.
    request_id = contextvars.ContextVar("request_id", default="unset")
    seen = []

    def record(label: str) -> None:
        seen.append((label, request_id.get()))
        request_id.set(f"set by {label}")

    left, right = socket.socketpair()
    right.setblocking(False)

    def on_readable() -> None:
        right.recv(10)
        record("reader")

    explicit = contextvars.copy_context()
    explicit.run(request_id.set, "explicit")

    async def main():
        request_id.set("main")
        loop.call_soon(record, "soon")
        loop.call_soon(record, "given", context=explicit)
        loop.call_later(0.001, record, "timer")
        loop.add_reader(right, on_readable)
        left.send(b"x")
        await asyncio.sleep(0.05)
        loop.remove_reader(right)
        loop.call_soon(record, "after")
        await asyncio.sleep(0)
        return request_id.get()

    try:
        assert run(loop, main()) == "main"
    finally:
        left.close()
        right.close()
    assert sorted(seen) == [
        ("after", "main"),
        ("given", "explicit"),
        ("reader", "main"),
        ("soon", "main"),
        ("timer", "main"),
    ]
    assert explicit[request_id] == "set by given"


def test_cancelled_timer_and_handle_do_not_run(loop):
    calls = []
    timer = loop.call_later(0.01, calls.append, "timer")
    handle = loop.call_soon(calls.append, "soon")
    timer.cancel()
    handle.cancel()

    run(loop, asyncio.sleep(0.05))

    assert calls == []
    assert timer.cancelled()
    assert handle.cancelled()


def test_many_cancelled_timers(loop):
    calls = []
    timers = [loop.call_later(60 + index, calls.append, index) for index in range(1000)]
    for timer in timers[:-1]:
        timer.cancel()
    loop.call_later(0.01, calls.append, "due")

    run(loop, asyncio.sleep(0.05))

    assert calls == ["due"]
    timers[-1].cancel()


def test_task_cancellation(loop):
    async def sleeper():
        await asyncio.sleep(30)

    async def main():
        task = asyncio.ensure_future(sleeper())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert run(loop, main()) is True


def test_reader_and_writer_on_socketpair(loop):
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    received = []

    async def main():
        readable = loop.create_future()
        writable = loop.create_future()
        loop.add_reader(right, set_once(readable, lambda: right.recv(100)))
        loop.add_writer(left, set_once(writable, lambda: True))
        assert await writable is True
        removed_writer = loop.remove_writer(left)
        if reports_removal(loop):
            assert removed_writer is True

        left.send(b"ping")
        received.append(await readable)
        removed_reader = loop.remove_reader(right)
        removed_again = loop.remove_reader(right)
        if reports_removal(loop):
            assert removed_reader is True
            assert removed_again is False

    try:
        run(loop, main())
    finally:
        left.close()
        right.close()
    assert received == [b"ping"]


def test_reader_replaced_on_same_fd(loop):
    left, right = socket.socketpair()
    right.setblocking(False)
    calls = []

    async def main():
        done = loop.create_future()

        def new_reader():
            calls.append("new")
            right.recv(10)
            set_once(done, lambda: None)()

        loop.add_reader(right.fileno(), calls.append, "old")
        loop.add_reader(right.fileno(), new_reader)
        left.send(b"x")
        await done
        loop.remove_reader(right.fileno())

    try:
        run(loop, main())
    finally:
        left.close()
        right.close()
    assert calls == ["new"]


def test_stale_event_skips_reused_descriptor(loop):
    # Both sockets are readable before one poll. The first reader to run
    # closes the other socket and puts a fresh socket on its descriptor
    # number. The closed socket's event from that poll must not run the
    # fresh socket's reader, which never receives data.
    pairs = {name: socket.socketpair() for name in ("a", "b")}
    for left, right in pairs.values():
        right.setblocking(False)
        left.send(b"x")
    fresh_left, fresh_right = socket.socketpair()
    replacements = []
    calls = []

    def replace(name: str) -> None:
        old = pairs[name][1]
        number = old.fileno()
        loop.remove_reader(number)
        old.close()
        replacement = socket.socket(fileno=os.dup2(fresh_right.fileno(), number))
        replacements.append(replacement)
        loop.add_reader(number, calls.append, "fresh")

    def on_readable(name: str, other: str) -> None:
        calls.append(name)
        pairs[name][1].recv(10)
        if not replacements:
            replace(other)

    async def main():
        loop.add_reader(pairs["a"][1], on_readable, "a", "b")
        loop.add_reader(pairs["b"][1], on_readable, "b", "a")
        for _ in range(5):
            await asyncio.sleep(0)
        for name in ("a", "b"):
            if pairs[name][1].fileno() != -1:
                loop.remove_reader(pairs[name][1])
        loop.remove_reader(replacements[0])

    try:
        run(loop, main())
    finally:
        for sock in (*(sock for pair in pairs.values() for sock in pair), fresh_left, fresh_right, *replacements):
            sock.close()
    assert len(replacements) == 1
    assert calls in (["a"], ["b"])


def test_reader_on_pipe(loop):
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)

    async def main():
        data = loop.create_future()
        loop.add_reader(read_fd, set_once(data, lambda: os.read(read_fd, 100)))
        loop.call_later(0.01, os.write, write_fd, b"through the pipe")
        result = await data
        loop.remove_reader(read_fd)
        return result

    try:
        assert run(loop, main()) == b"through the pipe"
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_pipe_transports(loop):
    read_fd, write_fd = os.pipe()

    async def main():
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(write_fd, "wb", 0))
        transport.write(b"line one\n")
        line = await reader.readline()
        transport.close()
        return line

    assert run(loop, main()) == b"line one\n"


def test_signal_handler(loop):
    received = []

    async def main():
        done = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, lambda: (received.append("SIGUSR1"), done.set_result(None)))
        os.kill(os.getpid(), signal.SIGUSR1)
        await done
        return loop.remove_signal_handler(signal.SIGUSR1)

    assert run(loop, main()) is True
    assert received == ["SIGUSR1"]


def test_subprocess_pipes_and_exit_code(loop):
    async def main():
        upper = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print(input().upper())",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output, _ = await upper.communicate(b"shout\n")
        failing = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(3)")
        return output, upper.returncode, await failing.wait()

    output, upper_code, failing_code = run(loop, main())

    assert output == b"SHOUT\n"
    assert upper_code == 0
    assert failing_code == 3


def test_subprocess_shell(loop):
    async def main():
        process = await asyncio.create_subprocess_shell("echo $((6 * 7))", stdout=asyncio.subprocess.PIPE)
        output, _ = await process.communicate()
        return output

    assert run(loop, main()) == b"42\n"


def test_run_in_executor(loop):
    def work(value):
        return value * 2, threading.get_ident()

    def fail():
        raise ValueError("from the executor")

    async def main():
        result, thread_id = await loop.run_in_executor(None, work, 21)
        with pytest.raises(ValueError, match="from the executor"):
            await loop.run_in_executor(None, fail)
        return result, thread_id

    result, thread_id = run(loop, main())
    assert result == 42
    assert thread_id != threading.get_ident()


def test_call_soon_threadsafe_wakes_loop(loop):
    async def main():
        done = loop.create_future()
        threading.Timer(0.05, lambda: loop.call_soon_threadsafe(done.set_result, "from thread")).start()
        return await done

    assert run(loop, main()) == "from thread"


def test_callback_exception_reaches_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda _, context: contexts.append(context))

    def broken():
        raise ZeroDivisionError("in a callback")

    loop.call_soon(broken)
    loop.call_later(0.001, broken)
    run(loop, asyncio.sleep(0.05))

    assert len(contexts) == 2
    for context in contexts:
        assert isinstance(context["exception"], ZeroDivisionError)
        assert "Exception in callback" in context["message"]


def test_reader_exception_reaches_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda _, context: contexts.append(context))
    left, right = socket.socketpair()

    def broken_reader():
        loop.remove_reader(right)
        raise KeyError("in a reader")

    async def main():
        loop.add_reader(right, broken_reader)
        left.send(b"x")
        await asyncio.sleep(0.05)

    try:
        run(loop, main())
    finally:
        left.close()
        right.close()
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], KeyError)


def test_close_with_pending_callbacks(loop):
    calls = []
    loop.call_soon(calls.append, "soon")
    loop.call_later(0.01, calls.append, "later")

    loop.close()

    assert loop.is_closed()
    assert calls == []
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(calls.append, "after close")
    loop.close()


def test_stop_runs_queued_callbacks_once(loop):
    calls = []
    loop.call_soon(calls.append, 1)
    loop.call_soon(loop.stop)
    loop.call_soon(calls.append, 2)

    loop.run_forever()

    assert calls == [1, 2]


async def _echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def test_tcp_streams_large_payload(loop):
    payload = os.urandom(4 * 1024 * 1024)

    async def main():
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send():
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        sender = asyncio.ensure_future(send())
        echoed = await reader.read(-1)
        await sender
        writer.close()
        server.close()
        await server.wait_closed()
        return echoed

    assert run(loop, main()) == payload


def test_tcp_eof_and_connection_lost(loop):
    events = []

    class Recorder(asyncio.Protocol):
        def data_received(self, data):
            events.append(("data", data))

        def eof_received(self):
            events.append(("eof",))

        def connection_lost(self, exc):
            events.append(("lost", exc))
            lost.set_result(None)

    async def main():
        server = await loop.create_server(Recorder, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        await writer.drain()
        writer.close()
        await lost
        server.close()
        await server.wait_closed()

    lost = loop.create_future()
    run(loop, main())
    assert events == [("data", b"hello"), ("eof",), ("lost", None)]


def test_sock_methods(loop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)

    async def main():
        client = socket.socket()
        client.setblocking(False)
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        await loop.sock_connect(client, listener.getsockname())
        server_side, _ = await accept
        await loop.sock_sendall(client, b"x" * 100_000)
        received = bytearray()
        while len(received) < 100_000:
            received += await loop.sock_recv(server_side, 65536)
        client.close()
        server_side.close()
        return len(received)

    try:
        assert run(loop, main()) == 100_000
    finally:
        listener.close()


def test_connect_refused(loop):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    with pytest.raises(ConnectionRefusedError):
        run(loop, asyncio.open_connection("127.0.0.1", port))


def test_debug_mode_round_trip(loop):
    loop.set_debug(True)

    async def main():
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"debug\n")
        line = await reader.readline()
        writer.close()
        server.close()
        await server.wait_closed()
        return line

    assert run(loop, main()) == b"debug\n"


def test_sleep_is_not_early_under_load(loop):
    async def busy():
        while True:
            await asyncio.sleep(0)

    async def main():
        spinner = asyncio.ensure_future(busy())
        started = time.monotonic()
        await asyncio.sleep(0.05)
        elapsed_s = time.monotonic() - started
        spinner.cancel()
        return elapsed_s

    assert run(loop, main()) >= 0.049


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


def test_tls_streams_and_start_tls(loop, tls_contexts):
    server_context, client_context = tls_contexts

    async def main():
        server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context)
        writer.write(b"over tls\n")
        direct = await reader.readline()
        writer.close()

        plain_server = await asyncio.start_server(_upgrade_then_echo(server_context), "127.0.0.1", 0)
        plain_port = plain_server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", plain_port)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"OK\n"
        await writer.start_tls(client_context)
        writer.write(b"after upgrade\n")
        upgraded = await reader.readline()
        writer.close()

        for each in (server, plain_server):
            each.close()
            await each.wait_closed()
        return direct, upgraded

    assert run(loop, main()) == (b"over tls\n", b"after upgrade\n")


def _upgrade_then_echo(server_context):
    async def handle(reader, writer):
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"OK\n")
        await writer.drain()
        await writer.start_tls(server_context)
        await _echo(reader, writer)

    return handle
