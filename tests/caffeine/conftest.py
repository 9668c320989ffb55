"""Fixtures that run the caffeine-manager services in this process, on real Redis and PostgreSQL.

Each service gets a database of its own, as under ``vvkit up``, and the
gateway listens on a free loopback port.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis

from tests.conftest import _execute, with_database
from vv.testing import ServiceHandle, run_service

SERVICES = Path(__file__).resolve().parents[2] / "services" / "caffeine-manager"
COMPONENTS = ("user", "machine", "coffee", "stats")


def load_service_class(component: str) -> type:
    """Import ``services/caffeine-manager/<component>/service.py`` and return its service class."""
    name = f"caffeine_manager__{component}__service"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SERVICES / component / "service.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return getattr(sys.modules[name], component.capitalize())


@dataclass
class Stack:
    """The running services, the gateway's base URL and an HTTP session to it."""

    app: str
    url: str
    http: aiohttp.ClientSession
    handles: dict[str, ServiceHandle] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)

    async def request(self, method: str, path: str, **options: Any) -> tuple[int, Any]:
        """Send one request to the gateway and return the status and the decoded JSON body."""
        async with self.http.request(method, self.url + path, **options) as response:
            return response.status, await response.json(content_type=None)


@contextlib.asynccontextmanager
async def fresh_databases(shared_database_url: str) -> AsyncIterator[dict[str, str]]:
    """Create one database per stateful component and drop them afterwards."""
    names = {component: f"vvtest_{component}_{uuid.uuid4().hex[:12]}" for component in COMPONENTS}
    for name in names.values():
        await _execute(shared_database_url, f'CREATE DATABASE "{name}"')
    try:
        yield {component: with_database(shared_database_url, name) for component, name in names.items()}
    finally:
        for name in names.values():
            await _execute(shared_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def databases(shared_database_url) -> AsyncIterator[dict[str, str]]:
    """One fresh database per stateful component, dropped after the test."""
    async with fresh_databases(shared_database_url) as urls:
        yield urls


@contextlib.asynccontextmanager
async def start_stack(app: str, redis_url: str, databases: dict[str, str], components=COMPONENTS, **settings: Any):
    """Run the given components and the gateway; yield a ``Stack``."""
    api_class = load_service_class("api")
    async with contextlib.AsyncExitStack() as stack:
        handles = {}
        for component in components:
            service_class = load_service_class(component)
            handles[component] = await stack.enter_async_context(
                run_service(service_class, app=app, transport=redis_url, database=databases[component], **settings)
            )
        gateway = await stack.enter_async_context(run_service(api_class, app=app, transport=redis_url))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Stack(app, f"http://127.0.0.1:{gateway.service.http_port}", http, {**handles, "api": gateway}, databases)


@pytest.fixture
def gateway_env(monkeypatch) -> None:
    """Make the gateway listen on a free loopback port."""
    monkeypatch.setenv("HTTP_PORT", "0")
    monkeypatch.setenv("HTTP_HOST", "127.0.0.1")


@pytest.fixture
async def caffeine(app_name, redis_url, databases, gateway_env) -> AsyncIterator[Stack]:
    """The whole caffeine-manager app behind a gateway, for one test."""
    async with start_stack(app_name, redis_url, databases) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_caffeine(shared_redis_url, shared_database_url) -> AsyncIterator[Stack]:
    """The whole caffeine-manager app behind a gateway, shared by the tests of one module.

    Tests that use it must not depend on what the others stored: they use
    random names and compare only their own records.
    """
    app = "t" + uuid.uuid4().hex[:12]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HTTP_PORT", "0")
        patch.setenv("HTTP_HOST", "127.0.0.1")
        async with fresh_databases(shared_database_url) as urls, start_stack(app, shared_redis_url, urls) as stack:
            yield stack
    client = redis.Redis.from_url(shared_redis_url)
    try:
        for key in client.scan_iter(match=f"*{{{app}.*", count=1000):
            client.delete(key)
    finally:
        client.close()
