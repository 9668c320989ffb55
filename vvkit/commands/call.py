"""``vvkit call APP/COMPONENT METHOD [KEY=VALUE]...``: send one RPC and print the reply as JSON.

The request goes through the Redis of the workspace's running local stack
(its URL and cluster flag come from ``.vvkit/run/state.json``), or through
``--redis URL`` for a stack that vvkit did not start. Exit codes:

- 0: the result is printed as JSON on stdout;
- 1: the service returned an error (its code and text go to stderr), or,
  before anything is sent, the target is no component of the workspace or
  has no live process in its local stack;
- 2: no reply came before the timeout.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Annotated, Any

import typer

from vvkit.console import out
from vvkit.errors import VvkitError
from vvkit.local import runner
from vvkit.local.rpc import open_client
from vvkit.local.state import RunState
from vvkit.names import check_label
from vvkit.options import WorkspaceOption, open_workspace

DEFAULT_TIMEOUT_S = 10.0
MIN_TIMEOUT_S = 0.001


class RemoteCallFailed(VvkitError):
    """The service returned an error. The message contains its code and text."""

    exit_code = 1


class CallTimedOut(VvkitError):
    """No reply came before the deadline."""

    exit_code = 2


def register(app: typer.Typer) -> None:
    app.command()(call)


def call(
    target: Annotated[str, typer.Argument(help="The service to call, as APP/COMPONENT.", show_default=False)],
    method: Annotated[str, typer.Argument(help="The RPC method name.", show_default=False)],
    arguments: Annotated[list[str] | None, typer.Argument(help="Keyword arguments as KEY=VALUE; VALUE is read as JSON when it is valid JSON, else taken as a string.", show_default=False)] = None,
    json_arguments: Annotated[str | None, typer.Option("--json", help="Arguments as JSON: an object for keyword arguments or an array for positional ones.", show_default=False)] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply, at least 0.001.")] = DEFAULT_TIMEOUT_S,
    redis_url: Annotated[str | None, typer.Option("--redis", help="Redis URL to send through. Default: the Redis of the running local stack.", envvar="VVKIT_REDIS_URL", show_default=False)] = None,
    cluster: Annotated[bool | None, typer.Option("--cluster/--no-cluster", help="Whether --redis is a Redis Cluster. Default: from the local stack, else no.", show_default=False)] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Send one RPC to a service and print its result as JSON."""
    service_id = _service_id(target)
    args, kwargs = parse_arguments(arguments or [], json_arguments)
    # Deadlines travel in whole milliseconds, so a shorter timeout would be 0.
    if not (timeout >= MIN_TIMEOUT_S and math.isfinite(timeout)):
        raise VvkitError(f"invalid --timeout {timeout}: use a finite number of seconds, at least {MIN_TIMEOUT_S}")
    url, is_cluster = _transport(target, redis_url, cluster, workspace)

    result = asyncio.run(_send(url, is_cluster, service_id, method, args, kwargs, timeout))
    out.print(json.dumps(result, indent=2, ensure_ascii=False, default=str), markup=False)


def _service_id(target: str) -> str:
    app, slash, component = target.partition("/")
    if not slash:
        raise VvkitError(f"invalid target {target!r}: write it as APP/COMPONENT, for example shop/echo")
    return f"{check_label(app, 'app')}.{check_label(component, 'component')}"


def parse_arguments(pairs: list[str], json_text: str | None) -> tuple[list[Any], dict[str, Any]]:
    """Return (args, kwargs) from ``KEY=VALUE`` pairs and a ``--json`` object or array."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    if json_text is not None:
        try:
            parsed = json.loads(json_text)
        except json.JSONDecodeError as exc:
            raise VvkitError(f"invalid --json {json_text!r}: {exc.msg} at character {exc.pos}") from None
        if isinstance(parsed, dict):
            kwargs.update(parsed)
        elif isinstance(parsed, list):
            args = parsed
        else:
            raise VvkitError(f"invalid --json {json_text!r}: use an object for keyword arguments or an array for positional ones")
    # A pair overrides the same key of --json, but two pairs with one key are a mistake.
    paired: set[str] = set()
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.isidentifier():
            raise VvkitError(f"invalid argument {pair!r}: write KEY=VALUE with KEY a Python identifier, for example name=M1")
        if key in paired:
            raise VvkitError(f"invalid argument {pair!r}: {key} is given twice; pass each argument once")
        paired.add(key)
        kwargs[key] = _value(value)
    return args, kwargs


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _transport(target: str, redis_url: str | None, cluster: bool | None, workspace) -> tuple[str, bool]:
    """Return the Redis URL and cluster flag to call ``target`` through.

    Without ``--redis`` the target must be a component of the workspace
    with a live process in its running local stack, so that a call that
    cannot be served fails at once instead of after the timeout.
    """
    if redis_url is not None:
        return redis_url, bool(cluster)
    ws = open_workspace(workspace)
    if target not in {f"{c.app}/{c.name}" for c in ws.components()}:
        raise VvkitError(f"no component {target} in this workspace; see 'vvkit list'")
    state = runner.running_state(ws)
    if state is None or not state.redis_url:
        raise VvkitError(f"no local stack runs in {ws.root}: start it with 'vvkit up --local', or pass --redis URL")
    _check_running(target, state)
    return state.redis_url, state.cluster if cluster is None else cluster


def _check_running(target: str, state: RunState) -> None:
    """Raise when the state file shows no live process of ``target``."""
    records = [record for record in state.services if record.component == target]
    if not records:
        raise VvkitError(f"{target} is not part of the running local stack: it was left out of 'vvkit up' "
                         "or added after it; restart with 'vvkit down && vvkit up'")
    if not any(record.is_alive() for record in records):
        states = ", ".join(sorted({str(record.state) for record in records}))
        raise VvkitError(f"{target} is not running in the local stack (state: {states}); "
                         f"see 'vvkit ps' and 'vvkit logs {target}'")


async def _send(url: str, cluster: bool, service_id: str, method: str, args: list, kwargs: dict, timeout_s: float) -> Any:
    from redis.exceptions import RedisError
    from vv import RemoteError, RequestTimeout, TransportError

    try:
        async with open_client(url, cluster) as client:
            return await client.call(service_id, method, args=args, kwargs=kwargs, timeout=timeout_s)
    except RequestTimeout as exc:
        raise CallTimedOut(f"timed out: {exc}") from None
    except RemoteError as exc:
        raise RemoteCallFailed(f"{exc.code} {exc.text}") from None
    except (TransportError, RedisError, OSError) as exc:
        raise VvkitError(f"cannot reach Redis at {url}: {exc}; check that the stack runs with 'vvkit ps'") from None
