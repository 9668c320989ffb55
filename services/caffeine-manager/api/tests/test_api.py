"""Starter test of caffeine-manager/api: the gateway responds over Redis and HTTP.

Runs the gateway class in this process against the Redis at VV_TEST_REDIS_URL
(default redis://127.0.0.1:6379/0), listening on a free loopback port. The
route-level tests of the whole app are in the repository's tests/caffeine/.
"""

import importlib.util
import os
import sys
import uuid
from pathlib import Path

import aiohttp

from vv.testing import run_service

SERVICE_FILE = Path(__file__).resolve().parents[1] / "service.py"
REDIS_URL = os.environ.get("VV_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def load_service_module():
    # Load service.py under a name of its own, so that the starter tests of
    # several components can run in one pytest session.
    name = "caffeine_manager__api__service"
    spec = importlib.util.spec_from_file_location(name, SERVICE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


Api = load_service_module().Api


async def test_health_reports_ok(monkeypatch):
    monkeypatch.setenv("HTTP_PORT", "0")
    monkeypatch.setenv("HTTP_HOST", "127.0.0.1")
    async with run_service(Api, app="starter-" + uuid.uuid4().hex[:8], transport=REDIS_URL) as api:
        reply = await api.call("health")
        url = f"http://127.0.0.1:{api.service.http_port}"
        async with aiohttp.ClientSession() as session, session.get(url + "/nobody") as response:
            status, body = response.status, await response.json()

    assert reply["status"] == "ok"
    assert status == 404
    assert body["error_code"] == 404
