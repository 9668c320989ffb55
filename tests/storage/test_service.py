"""Storage inside real services run by vv.testing.run_service."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio

from vv import Conflict, Entity, Field, NotFound, Service, rpc, subscribe
from vv.testing import run_service

from_json_values = [None, "", "None", 0, False, 0.1, -0.0, 1e300, "\x00\n\x1b", "😀", {"{k}": [1.5, None]}]


class User(Service):
    entity = Entity(
        "user",
        {
            "login": Field(str, required=True, unique=True),
            "password": Field(str, hashed=True),
            "extra": Field(object),
        },
    )

    @rpc(http=["POST"])
    async def register(self, login: str, password: str | None = None, extra: object = None) -> int:
        return await self.records.add(login=login, password=password, extra=extra)

    @rpc(http=["GET"])
    async def get(self, id: int) -> dict:  # noqa: A002 - the gateway passes the path id as 'id'
        return await self.records.get(id)

    @rpc()
    async def check_password(self, id: int, password: str) -> bool:  # noqa: A002
        return await self.records.verify(id, "password", password)


class Stats(Service):
    seen: list[dict]

    async def start(self) -> None:
        self.seen = []

    @rpc()
    async def user(self, id: int) -> dict:  # noqa: A002
        return await self.records_of("user").get(id)

    @subscribe("user", "user.added")
    async def on_user_added(self, event: dict) -> None:
        await self.list("added").append(event)

    @rpc()
    async def added(self) -> list:
        return await self.list("added").items()


@pytest.fixture
async def user_service(redis_url, app_name, database_url):
    async with run_service(User, app=app_name, transport=redis_url, database=database_url) as handle:
        yield handle


async def test_records_through_rpc(user_service):
    user_id = await user_service.call("register", login="ann", password="pw")

    record = await user_service.call("get", user_id)

    assert record == {"id": user_id, "login": "ann", "extra": None}
    assert await user_service.call("check_password", user_id, "pw") is True
    assert await user_service.call("check_password", user_id, "wrong") is False


async def test_conflict_and_not_found_travel_as_codes(user_service):
    await user_service.call("register", login="ann")

    with pytest.raises(Conflict, match="login") as conflict:
        await user_service.call("register", login="ANN")
    with pytest.raises(NotFound) as missing:
        await user_service.call("get", 404)

    assert conflict.value.code == 409
    assert missing.value.code == 404


async def test_values_round_trip_over_rpc(user_service):
    for index, value in enumerate(from_json_values):
        user_id = await user_service.call("register", login=f"user{index}", extra=value)
        extra = (await user_service.call("get", user_id))["extra"]
        assert type(extra) is type(value)
        assert repr(extra) == repr(value)


async def test_records_of_falls_back_to_owner_rpc(user_service, redis_url, app_name, database_url):
    user_id = await user_service.call("register", login="ann", password="pw")
    client = redis.asyncio.Redis.from_url(redis_url)
    record_key = user_service.service.keys.record(user_id)

    async with run_service(Stats, app=app_name, transport=redis_url, database=database_url) as stats:
        hot = await stats.call("user", user_id)
        await client.delete(record_key)
        cold = await stats.call("user", user_id)
        refilled = await client.exists(record_key)
        with pytest.raises(NotFound):
            await stats.call("user", user_id + 1)

    await client.aclose()
    assert hot == {"id": user_id, "login": "ann", "extra": None}
    assert cold == hot
    assert refilled == 1


async def test_record_events_reach_subscriber(user_service, redis_url, app_name, database_url):
    async with run_service(Stats, app=app_name, transport=redis_url, database=database_url) as stats:
        user_id = await user_service.call("register", login="ann", password="pw")
        added = []
        for _ in range(200):
            added = await stats.call("added")
            if added:
                break
            await asyncio.sleep(0.05)

    assert added == [{"id": user_id, "login": "ann", "extra": None}]


async def test_values_round_trip_through_gateway(user_service, redis_url, app_name, monkeypatch):
    import aiohttp

    from vv.gateway import Gateway

    class Api(Gateway):
        pass

    monkeypatch.setenv("HTTP_PORT", "0")
    async with run_service(Api, app=app_name, transport=redis_url) as api:
        base = f"http://127.0.0.1:{api.service.http_port}"
        async with aiohttp.ClientSession() as session:
            for index, value in enumerate(from_json_values):
                async with session.post(f"{base}/user/register", json={"login": f"web{index}", "extra": value}) as posted:
                    user_id = (await posted.json())["response"]
                async with session.get(f"{base}/user/get/{user_id}") as got:
                    extra = (await got.json())["response"]["extra"]
                assert type(extra) is type(value)
                assert repr(extra) == repr(value)


async def test_flushall_with_service_running(redis_server_factory, app_name, database_url):
    server = redis_server_factory()
    client = redis.asyncio.Redis.from_url(server.url)

    async with run_service(User, app=app_name, transport=server.url, database=database_url) as users:
        first = await users.call("register", login="ann", password="pw")
        await client.flushall()
        record = await users.call("get", first)
        with pytest.raises(Conflict, match="login"):
            await users.call("register", login="ANN")
        second = await users.call("register", login="bob")
        password_ok = await users.call("check_password", first, "pw")

    await client.aclose()
    assert record == {"id": first, "login": "ann", "extra": None}
    assert second > first
    assert password_ok is True


class Note(Service):
    entity = Entity("note", {"text": Field(str, unique=True), "extra": Field(object)})

    @rpc()
    async def add_and_echo(self, text: str, extra: object = None) -> int:
        """Add a note, then emit the stored record with ``emit`` for comparison."""
        note_id = await self.records.add(text=text, extra=extra)
        await self.emit("note.echo", await self.records.get(note_id))
        return note_id


class LoudNote(Note):
    emitted: list[str]

    async def start(self) -> None:
        self.emitted = []

    async def emit(self, event: str, payload: object) -> str:
        self.emitted.append(event)
        return await super().emit(event, payload)


async def event_entries(redis_url: str, service: Service) -> list[dict[bytes, bytes]]:
    client = redis.asyncio.Redis.from_url(redis_url)
    entries = await client.xrange(service.keys.events)
    await client.aclose()
    return [fields for _, fields in entries]


async def test_record_event_entry_matches_emit(redis_url, app_name, database_url):
    extra = {"k": [1.5, "😀", None, -0.0], "s": "\x00\n"}
    async with run_service(Note, app=app_name, transport=redis_url, database=database_url) as notes:
        await notes.call("add_and_echo", text="a", extra=extra)
        added, echoed = await event_entries(redis_url, notes.service)

    assert list(added) == list(echoed) == [b"event", b"body", b"emitted_ms", b"trace"]
    assert added[b"event"] == b"note.added"
    assert added[b"body"] == echoed[b"body"]
    assert added[b"trace"] == echoed[b"trace"]
    assert added[b"trace"] != b""
    assert int(added[b"emitted_ms"]) <= int(echoed[b"emitted_ms"])


async def test_update_and_delete_events_carry_records(redis_url, app_name, database_url):
    async with run_service(Note, app=app_name, transport=redis_url, database=database_url) as notes:
        records = notes.service.records
        note_id = await records.add(text="a")
        updated = await records.update(note_id, text="b", extra=[1])
        await records.delete(note_id)
        entries = await event_entries(redis_url, notes.service)

    names = [fields[b"event"] for fields in entries]
    bodies = [json.loads(fields[b"body"]) for fields in entries]
    assert names == [b"note.added", b"note.updated", b"note.deleted"]
    assert bodies == [{"id": note_id, "text": "a", "extra": None}, updated, updated]


async def test_record_events_trim_the_stream(redis_url, app_name, database_url):
    async with run_service(Note, app=app_name, transport=redis_url, database=database_url,
                           max_events_len=10) as notes:
        for index in range(250):
            await notes.service.records.add(text=f"n{index}")
        entries = await event_entries(redis_url, notes.service)

    # MAXLEN ~ drops whole stream nodes of 100 entries (Redis's default
    # stream-node-max-entries), so the length stays between 10 and 150.
    assert 10 <= len(entries) <= 150
    assert entries[-1][b"body"] == b'{"id":250,"text":"n249","extra":null}'


async def test_overridden_emit_gets_record_events(redis_url, app_name, database_url):
    async with run_service(LoudNote, app=app_name, transport=redis_url, database=database_url) as notes:
        await notes.service.records.add(text="a")
        entries = await event_entries(redis_url, notes.service)

    assert notes.service.emitted == ["note.added"]
    assert [fields[b"event"] for fields in entries] == [b"note.added"]
