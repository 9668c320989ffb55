"""Starter test of caffeine-manager/coffee: a purchase with an invalid timestamp is rejected.

Runs the service in this process against the Redis at VV_TEST_REDIS_URL
(default redis://127.0.0.1:6379/0) and a fresh database on the PostgreSQL
server at VV_TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), dropped afterwards. The
route-level tests of the whole app are in the repository's tests/caffeine/.
"""

import importlib.util
import os
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from vv import InvalidRequest
from vv.testing import run_service

SERVICE_FILE = Path(__file__).resolve().parents[1] / "service.py"
REDIS_URL = os.environ.get("VV_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("VV_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def load_service_module():
    # Load service.py under a name of its own, so that the starter tests of
    # several components can run in one pytest session.
    name = "caffeine_manager__coffee__service"
    spec = importlib.util.spec_from_file_location(name, SERVICE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


Coffee = load_service_module().Coffee


@asynccontextmanager
async def fresh_database():
    """Yield the URL of a new database on the test server and drop it afterwards."""
    name = "starter_" + uuid.uuid4().hex[:16]
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(DATABASE_URL)._replace(path="/" + name))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def unique_app():
    return "starter-" + uuid.uuid4().hex[:8]


async def test_buy_with_invalid_timestamp_rejected():
    # The timestamp is checked before the user and machine are read, so this
    # needs neither service running.
    async with fresh_database() as database, run_service(Coffee, app=unique_app(), transport=REDIS_URL, database=database) as coffee:
        try:
            await coffee.call("buy", 1, 1, timestamp="yesterday")
        except InvalidRequest as exc:
            error = exc
        count = await coffee.call("count")

    assert error.text.startswith("invalid timestamp 'yesterday'")
    assert count == {"count": 0}


async def test_health_reports_ok():
    async with fresh_database() as database, run_service(Coffee, app=unique_app(), transport=REDIS_URL, database=database) as coffee:
        reply = await coffee.call("health")

    assert reply["status"] == "ok"
