"""Every caffeine-manager endpoint through the HTTP gateway, with the services on real Redis and PostgreSQL.

The tests share one running app (``shared_caffeine``) and use random names,
so they do not depend on each other's records.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")

DRAIN_TIMEOUT_S = 10.0


def new_user() -> dict:
    login = "ann-" + secrets.token_hex(4)
    return {"login": login, "password": "s3cret-" + login, "email": f"{login}@example.com"}


async def add_user(stack, **overrides) -> int:
    status, body = await stack.request("PUT", "/user", json={**new_user(), **overrides})
    assert status == 200, body
    return body["response"]["id"]


async def add_machine(stack, caffeine=40) -> int:
    status, body = await stack.request("POST", "/machine", json={"name": "m-" + secrets.token_hex(4), "caffeine": caffeine})
    assert status == 200, body
    return body["response"]["id"]


async def buy(stack, user_id, machine_id, **body) -> int:
    status, reply = await stack.request("PUT", f"/coffee/buy/{user_id}/{machine_id}", json=body or None)
    assert status == 200, reply
    return reply["response"]["id"]


async def wait_counted(stack, path: str, count: int) -> dict:
    """Poll a stats route until its count reaches ``count``; stats counts coffees from events, later."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        status, body = await stack.request("GET", path)
        assert status == 200, body
        if body["response"]["count"] >= count or time.monotonic() > deadline:
            return body["response"]
        await asyncio.sleep(0.05)


# --- user --------------------------------------------------------------


async def test_user_sign_up_and_get(shared_caffeine):
    fields = new_user()

    status, body = await shared_caffeine.request("PUT", "/user", json=fields)
    assert status == 200
    user_id = body["response"]["id"]
    status, body = await shared_caffeine.request("GET", f"/user/{user_id}")

    assert status == 200
    assert body == {"response": {"id": user_id, "login": fields["login"], "email": fields["email"]}}


async def test_user_request_path_same_as_bare(shared_caffeine):
    status, body = await shared_caffeine.request("PUT", "/user/request", json=new_user())

    assert status == 200
    assert isinstance(body["response"]["id"], int)


async def test_user_missing_fields_named(shared_caffeine):
    status, body = await shared_caffeine.request("PUT", "/user", json={"email": "x@example.com"})

    assert status == 400
    assert body == {"error_code": 400, "error_text": "missing required fields: login, password"}


async def test_user_taken_login_conflict(shared_caffeine):
    first = new_user()
    await add_user(shared_caffeine, **first)

    status, body = await shared_caffeine.request("PUT", "/user", json={**new_user(), "login": first["login"].upper()})

    assert status == 409
    assert body["error_text"] == f"user already exists: login {first['login'].upper()!r} is taken"


async def test_user_taken_email_conflict(shared_caffeine):
    first = new_user()
    await add_user(shared_caffeine, **first)

    status, body = await shared_caffeine.request("PUT", "/user", json={**new_user(), "email": first["email"]})

    assert status == 409
    assert body["error_code"] == 409
    assert body["error_text"] == f"user already exists: email {first['email']!r} is taken"


async def test_user_extra_field_rejected(shared_caffeine):
    status, body = await shared_caffeine.request("PUT", "/user", json={**new_user(), "admin": True})

    assert status == 400
    assert "unexpected keyword argument 'admin'" in body["error_text"]


async def test_user_invalid_email_rejected(shared_caffeine):
    status, body = await shared_caffeine.request("PUT", "/user", json={**new_user(), "email": "nobody"})

    assert status == 400
    assert body["error_text"].startswith("invalid email 'nobody'")


async def test_user_password_stored_hashed(shared_caffeine):
    fields = new_user()
    user_id = await add_user(shared_caffeine, **fields)

    connection = await asyncpg.connect(shared_caffeine.databases["user"])
    try:
        stored = await connection.fetchval('SELECT password FROM "user" WHERE id = $1', user_id)
    finally:
        await connection.close()

    assert stored.startswith("scrypt$")
    assert fields["password"] not in stored


async def test_user_password_never_in_event(shared_caffeine):
    fields = new_user()
    await add_user(shared_caffeine, **fields)

    redis = shared_caffeine.handles["user"].service.redis
    entries = await redis.xrange(shared_caffeine.handles["user"].service.keys.events)

    bodies = [entry[1]["body"] for entry in entries]
    assert any(fields["login"] in body for body in bodies)
    assert not any(fields["password"] in body or "password" in body for body in bodies)


async def test_user_list_ordered_without_passwords(shared_caffeine):
    ids = [await add_user(shared_caffeine) for _ in range(3)]

    status, body = await shared_caffeine.request("GET", "/user/list")

    assert status == 200
    users = body["response"]["users"]
    listed_ids = [user["id"] for user in users]
    assert listed_ids == sorted(listed_ids)
    assert set(ids) <= set(listed_ids)
    assert all(set(user) == {"id", "login", "email"} for user in users)


async def test_user_unknown_id_not_found(shared_caffeine):
    status, body = await shared_caffeine.request("GET", "/user/987654")

    assert status == 404
    assert body == {"error_code": 404, "error_text": "user 987654 not found"}


async def test_user_lookup_with_fields_rejected(shared_caffeine):
    user_id = await add_user(shared_caffeine)

    status, body = await shared_caffeine.request("PUT", f"/user/{user_id}", json=new_user())

    assert status == 400
    assert "a user lookup takes no fields" in body["error_text"]


async def test_user_wrong_http_method(shared_caffeine):
    status, body = await shared_caffeine.request("POST", "/user", json=new_user())

    assert status == 405
    assert body["error_code"] == 405
    assert body["error_text"].endswith("use GET, PUT")


# --- machine -----------------------------------------------------------


async def test_machine_add_and_get(shared_caffeine):
    name = "m-" + secrets.token_hex(4)

    status, body = await shared_caffeine.request("POST", "/machine", json={"name": name, "caffeine": 95})
    machine_id = body["response"]["id"]
    get_status, got = await shared_caffeine.request("GET", f"/machine/{machine_id}")

    assert status == 200
    assert get_status == 200
    assert got["response"] == {"id": machine_id, "name": name, "caffeine": 95.0}


async def test_machine_from_query_string(shared_caffeine):
    name = "m-" + secrets.token_hex(4)

    status, body = await shared_caffeine.request("POST", f"/machine?name={name}&caffeine=12.5")
    got = await shared_caffeine.request("GET", f"/machine/{body['response']['id']}")

    assert status == 200
    assert got[1]["response"]["caffeine"] == 12.5


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"caffeine": 40}, "missing required fields: name"),
        ({}, "missing required fields: name, caffeine"),
        ({"name": "x", "caffeine": 1001}, "invalid caffeine 1001: use a number of milligrams from 0 to 1000"),
        ({"name": "x", "caffeine": -1}, "invalid caffeine -1: use a number of milligrams from 0 to 1000"),
        ({"name": "x", "caffeine": "strong"}, "invalid caffeine 'strong': use a number of milligrams from 0 to 1000"),
        ({"name": "x", "caffeine": True}, "invalid caffeine True: use a number of milligrams from 0 to 1000"),
        ({"name": 7, "caffeine": 40}, "invalid argument name=7 for {app}.machine.request: expected a string or null"),
    ],
)
async def test_machine_invalid_fields(shared_caffeine, fields, text):
    status, body = await shared_caffeine.request("POST", "/machine", json=fields)

    assert status == 400
    assert body == {"error_code": 400, "error_text": text.format(app=shared_caffeine.app)}


async def test_machine_caffeine_bounds_accepted(shared_caffeine):
    for caffeine in (0, 1000):
        status, body = await shared_caffeine.request("POST", "/machine", json={"name": "m-" + secrets.token_hex(4), "caffeine": caffeine})
        assert status == 200, body


async def test_machine_taken_name_conflict(shared_caffeine):
    name = "m-" + secrets.token_hex(4)
    await shared_caffeine.request("POST", "/machine", json={"name": name, "caffeine": 40})

    status, body = await shared_caffeine.request("POST", "/machine", json={"name": name, "caffeine": 50})

    assert status == 409
    assert body["error_text"] == f"machine already exists: name {name!r} is taken"


async def test_machine_extra_field_rejected(shared_caffeine):
    status, body = await shared_caffeine.request("POST", "/machine", json={"name": "x", "caffeine": 4, "color": "red"})

    assert status == 400
    assert "unexpected keyword argument 'color'" in body["error_text"]


async def test_machine_list_and_unknown(shared_caffeine):
    machine_id = await add_machine(shared_caffeine)

    status, body = await shared_caffeine.request("GET", "/machine/list")
    missing_status, missing = await shared_caffeine.request("GET", "/machine/987654")

    assert status == 200
    ids = [machine["id"] for machine in body["response"]["machines"]]
    assert machine_id in ids
    assert ids == sorted(ids)
    assert missing_status == 404
    assert missing["error_text"] == "machine 987654 not found"


async def test_machine_wrong_http_method(shared_caffeine):
    status, body = await shared_caffeine.request("PUT", "/machine", json={"name": "x", "caffeine": 4})

    assert status == 405
    assert body["error_text"].endswith("use GET, POST")


# --- coffee ------------------------------------------------------------


async def test_coffee_buy_put_and_get(shared_caffeine):
    user_id = await add_user(shared_caffeine)
    machine_id = await add_machine(shared_caffeine)

    put_status, put = await shared_caffeine.request("PUT", f"/coffee/buy/{user_id}/{machine_id}")
    get_status, got = await shared_caffeine.request("GET", f"/coffee/buy/{user_id}/{machine_id}")

    assert put_status == 200
    assert get_status == 200
    assert got["response"]["id"] > put["response"]["id"]


async def test_coffee_record_copies_user_and_machine(shared_caffeine):
    fields = new_user()
    user_id = await add_user(shared_caffeine, **fields)
    machine_id = await add_machine(shared_caffeine, caffeine=64)
    timestamp = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()

    coffee_id = await buy(shared_caffeine, user_id, machine_id, timestamp=timestamp)
    listed = await wait_counted(shared_caffeine, f"/stats/coffee/user/{user_id}", 1)

    coffee = listed["result"][0]
    assert coffee["id"] == coffee_id
    assert coffee["user_id"] == user_id
    assert coffee["login"] == fields["login"]
    assert coffee["machine_id"] == machine_id
    assert coffee["machine_name"].startswith("m-")
    assert coffee["caffeine"] == 64
    assert datetime.fromisoformat(coffee["bought_at"]) == datetime.fromisoformat(timestamp)
    assert "password" not in coffee


async def test_coffee_unknown_user_or_machine(shared_caffeine):
    user_id = await add_user(shared_caffeine)
    machine_id = await add_machine(shared_caffeine)

    user_status, user_body = await shared_caffeine.request("PUT", f"/coffee/buy/987654/{machine_id}")
    machine_status, machine_body = await shared_caffeine.request("PUT", f"/coffee/buy/{user_id}/987654")

    assert user_status == 404
    assert user_body["error_text"] == "user 987654 not found"
    assert machine_status == 404
    assert machine_body["error_text"] == "machine 987654 not found"


@pytest.mark.parametrize(
    ("timestamp", "text"),
    [
        ("yesterday", "invalid timestamp 'yesterday'"),
        ("2026-01-31T08:15:00", "invalid timestamp '2026-01-31T08:15:00': the zone is missing"),
        ("2999-01-01T00:00:00+00:00", "invalid timestamp '2999-01-01T00:00:00+00:00': it is in the future"),
        (12, "invalid timestamp 12"),
    ],
)
async def test_coffee_invalid_timestamp(shared_caffeine, timestamp, text):
    user_id = await add_user(shared_caffeine)
    machine_id = await add_machine(shared_caffeine)

    status, body = await shared_caffeine.request("PUT", f"/coffee/buy/{user_id}/{machine_id}", json={"timestamp": timestamp})

    assert status == 400
    assert body["error_text"].startswith(text)


async def test_coffee_timestamp_with_zone_accepted(shared_caffeine):
    user_id = await add_user(shared_caffeine)
    machine_id = await add_machine(shared_caffeine)

    for timestamp in ("2026-01-31T08:15:00Z", "2026-01-31T09:15:00+01:00"):
        status, body = await shared_caffeine.request("GET", f"/coffee/buy/{user_id}/{machine_id}?timestamp={timestamp.replace('+', '%2B')}")
        assert status == 200, body


async def test_coffee_missing_machine_id(shared_caffeine):
    status, body = await shared_caffeine.request("PUT", "/coffee/buy/1")

    assert status == 400
    assert "missing a required argument: 'machine_id'" in body["error_text"]


async def test_coffee_wrong_http_method(shared_caffeine):
    status, body = await shared_caffeine.request("POST", "/coffee/buy/1/1")

    assert status == 405
    assert body["error_text"].endswith("use GET, PUT")


# --- stats -------------------------------------------------------------


async def test_stats_per_user_and_machine(shared_caffeine):
    ann, bob = await add_user(shared_caffeine), await add_user(shared_caffeine)
    first, second = await add_machine(shared_caffeine), await add_machine(shared_caffeine)
    bought = [
        await buy(shared_caffeine, ann, first),
        await buy(shared_caffeine, bob, first),
        await buy(shared_caffeine, ann, second),
    ]

    by_ann = await wait_counted(shared_caffeine, f"/stats/coffee/user/{ann}", 2)
    by_first = await wait_counted(shared_caffeine, f"/stats/coffee/machine/{first}", 2)
    by_second = await wait_counted(shared_caffeine, f"/stats/coffee/machine/{second}", 1)

    assert [coffee["id"] for coffee in by_ann["result"]] == [bought[0], bought[2]]
    assert by_ann["count"] == 2
    assert [coffee["id"] for coffee in by_first["result"]] == [bought[0], bought[1]]
    assert [coffee["id"] for coffee in by_second["result"]] == [bought[2]]


async def test_stats_all_coffees_in_order_bought(shared_caffeine):
    user_id = await add_user(shared_caffeine)
    machine_id = await add_machine(shared_caffeine)
    now = datetime.now(UTC)
    later = await buy(shared_caffeine, user_id, machine_id, timestamp=(now - timedelta(hours=1)).isoformat())
    earlier = await buy(shared_caffeine, user_id, machine_id, timestamp=(now - timedelta(hours=2)).isoformat())
    await wait_counted(shared_caffeine, f"/stats/coffee/user/{user_id}", 2)

    status, body = await shared_caffeine.request("GET", "/stats/coffee")

    assert status == 200
    ids = [coffee["id"] for coffee in body["response"]["result"]]
    assert body["response"]["count"] == len(ids)
    assert ids.index(earlier) < ids.index(later)


async def test_stats_unknown_user_has_no_coffees(shared_caffeine):
    status, body = await shared_caffeine.request("GET", "/stats/coffee/user/987654")

    assert status == 200
    assert body["response"] == {"result": [], "count": 0}


async def test_stats_level_worked_example(shared_caffeine):
    user_id = await add_user(shared_caffeine)
    now = datetime.now(UTC)
    for caffeine, age in [(8, timedelta(minutes=30)), (5, timedelta(hours=3, minutes=20)),
                          (9, timedelta(hours=12)), (4, timedelta(hours=26))]:
        machine_id = await add_machine(shared_caffeine, caffeine=caffeine)
        await buy(shared_caffeine, user_id, machine_id, timestamp=(now - age).isoformat())
    await wait_counted(shared_caffeine, f"/stats/coffee/user/{user_id}", 4)

    status, body = await shared_caffeine.request("GET", f"/stats/level/user/{user_id}")

    assert status == 200
    level = body["response"]
    assert level["user_id"] == user_id
    assert level["level"] == 11.5
    assert level["window"][0] == 8
    assert level["window"][3] == 5
    assert level["window"][12] == 9
    assert sum(level["window"]) == 22


async def test_stats_routes_reject_other_methods(shared_caffeine):
    status, body = await shared_caffeine.request("PUT", "/stats/coffee")

    assert status == 405
    assert body["error_text"].endswith("use GET")


# --- gateway -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "text"),
    [
        ("GET", "/teapot/list", "unknown service 'teapot'"),
        ("GET", "/user/delete/1", "no HTTP endpoint GET /user/delete/1"),
        ("GET", "/user/health", "no HTTP endpoint GET /user/health"),
        ("POST", "/machine/health", "no HTTP endpoint POST /machine/health"),
        ("GET", "/stats/on/coffee", "no HTTP endpoint GET /stats/on/coffee"),
        ("GET", "/user/_record_get/1", "neither a word nor a number"),
        ("GET", "/api/list", "unknown service 'api'"),
        ("GET", "/", "the path names no service"),
    ],
)
async def test_gateway_unreachable_is_not_found(shared_caffeine, method, path, text):
    status, body = await shared_caffeine.request(method, path)

    assert status == 404
    assert body["error_code"] == 404
    assert text in body["error_text"]


async def test_gateway_invalid_json_names_parse_error(shared_caffeine):
    status, body = await shared_caffeine.request("PUT", "/user", data=b'{"login": "ann",', headers={"Content-Type": "application/json"})

    assert status == 400
    assert body["error_text"].startswith("invalid JSON body: Expecting property name enclosed in double quotes")


async def test_gateway_health_reports_every_service(shared_caffeine):
    status, body = await shared_caffeine.request("GET", "/health")

    assert status == 200
    services = body["response"]["services"]
    assert sorted(services) == ["coffee", "machine", "stats", "user"]
    assert all(service["status"] == "ok" for service in services.values())
