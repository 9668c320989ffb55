"""Make a non-blocking HTTP GET while other work goes on, with VLoop.

Two steps share one VLoop: ``numbers`` appends a random number to its list
on every turn, and ``fetch`` advances an HTTP GET by one non-blocking step.
When the response is complete (or has failed, or timed out) ``fetch`` calls
finish, and the result callback prints what both steps did::

    python examples/vloop_example.py --host 127.0.0.1 --port 8080 --path /health
    python examples/vloop_example.py --port 8080 --param q=coffee --param limit=5 --mode passing

Exit status: 0 when a response arrived, 1 when the request timed out or
failed.
"""

from __future__ import annotations

import argparse
import random
import sys

from vv.loop import HttpGet, VLoop


def numbers_step(state: dict, finish, pass_on=None):
    # Small ints are shared objects in CPython, so a long run costs one
    # pointer per number rather than a new object each.
    state["numbers"].append(random.randrange(256))
    if pass_on is not None:
        return pass_on()


def make_fetch_step(request: HttpGet):
    def fetch_step(state: dict, finish, pass_on=None):
        if request.advance():
            state["result"] = request.result
            finish()
            return None
        if pass_on is not None:
            return pass_on()

    return fetch_step


def report(states: dict) -> None:
    result = states["fetch"]["result"]
    lines = [
        ("numbers added", len(states["numbers"]["numbers"])),
        ("host", f"{result.host}:{result.port}"),
        ("protocol", result.protocol or "-"),
        ("status", result.status or "-"),
        ("code", result.code if result.code is not None else "-"),
        ("content length", result.content_length),
        ("time taken", f"{result.elapsed_s * 1000:.1f} ms"),
    ]
    if result.error:
        lines.append(("error", result.error))
    for label, value in lines:
        print(f"{label + ':':16}{value}")


def parse_query(pairs: list[str]) -> list[tuple[str, str]]:
    query = []
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise SystemExit(f"invalid --param {pair!r}: use name=value")
        query.append((name, value))
    return query


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run an HTTP GET next to other work on a VLoop.")
    parser.add_argument("--host", default="127.0.0.1", help="server host name or IP address")
    parser.add_argument("--port", type=int, default=80, help="server TCP port")
    parser.add_argument("--path", default="/", help="request path, starting with '/'")
    parser.add_argument("--param", action="append", default=[], help="query parameter name=value (repeatable)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds until the request ends with code 408")
    parser.add_argument("--mode", choices=("calling", "passing"), default="calling", help="VLoop mode")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    request = HttpGet(args.host, args.port, args.path, parse_query(args.param), timeout_s=args.timeout)

    # The request's timeout already bounds the run. The default pass limit
    # would end a slow response early in passing mode, so it is lifted.
    vloop = VLoop(args.mode, on_result=report, max_passes=None)
    vloop.add("numbers", numbers_step, {"numbers": []})
    vloop.add("fetch", make_fetch_step(request), {"result": None})
    states = vloop.run()

    return 0 if states["fetch"]["result"].ok else 1


if __name__ == "__main__":
    sys.exit(main())
