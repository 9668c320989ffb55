"""Records of a service's own entity against real Redis and PostgreSQL."""

from __future__ import annotations

import re

import asyncpg
import pytest

from vv._errors import ConfigError, Conflict, InvalidRequest, NotFound
from vv.storage import Entity, Field, verify_secret

# The same fields as the 'user' entity of the storage fixture.
USER = Entity(
    "user",
    {
        "login": Field(str, required=True, unique=True),
        "password": Field(str, hashed=True),
        "name": Field(str),
        "level": Field(int, default=0),
        "score": Field(float),
        "active": Field(bool),
        "extra": Field(object),
    },
)


async def test_add_returns_increasing_ids(storage):
    first = await storage.records.add(login="ann")
    second = await storage.records.add(login="bob")

    assert first == 1
    assert second == 2


async def test_get_returns_added_record(storage):
    user_id = await storage.records.add(login="ann", name="Ann", level=3)

    record = await storage.records.get(user_id)

    assert record == {
        "id": user_id, "login": "ann", "name": "Ann", "level": 3, "score": None, "active": None, "extra": None,
    }


async def test_get_missing_record_raises_not_found(storage):
    with pytest.raises(NotFound, match="user 99 not found"):
        await storage.records.get(99)


async def test_update_changes_fields(storage):
    user_id = await storage.records.add(login="ann", level=1)

    updated = await storage.records.update(user_id, level=2, name="Ann")

    assert updated["level"] == 2
    assert updated["name"] == "Ann"
    assert await storage.records.get(user_id) == updated


async def test_update_missing_record_raises_not_found(storage):
    with pytest.raises(NotFound):
        await storage.records.update(5, level=2)


async def test_delete_removes_record_and_frees_unique_value(storage):
    user_id = await storage.records.add(login="ann")

    await storage.records.delete(user_id)

    with pytest.raises(NotFound):
        await storage.records.get(user_id)
    assert await storage.records.find("login", "ann") is None
    assert await storage.records.add(login="ann") == user_id + 1


async def test_delete_missing_record_raises_not_found(storage):
    with pytest.raises(NotFound):
        await storage.records.delete(1)


async def test_list_pages_in_id_order(storage):
    for index in range(5):
        await storage.records.add(login=f"user{index}")

    first_page = await storage.records.list(limit=2)
    second_page = await storage.records.list(after_id=first_page[-1]["id"], limit=2)
    last_page = await storage.records.list(after_id=second_page[-1]["id"], limit=2)

    assert [r["login"] for r in first_page] == ["user0", "user1"]
    assert [r["login"] for r in second_page] == ["user2", "user3"]
    assert [r["login"] for r in last_page] == ["user4"]


async def test_list_rejects_page_size_zero(storage):
    with pytest.raises(InvalidRequest, match="page size 0"):
        await storage.records.list(limit=0)


async def test_unique_conflict_names_field(storage):
    await storage.records.add(login="ann")

    with pytest.raises(Conflict, match="login 'ann' already exists") as caught:
        await storage.records.add(login="ann")

    assert caught.value.code == 409


async def test_unique_text_compares_case_folded(storage):
    await storage.records.add(login="Ann@Example.org")

    with pytest.raises(Conflict, match="login"):
        await storage.records.add(login="ann@example.ORG")
    found = await storage.records.find("login", "ANN@example.org")

    assert found["login"] == "Ann@Example.org"


async def test_unique_case_sensitive_field(open_user_storage, FakeService):
    entity = Entity("code", {"code": Field(str, unique=True, case_sensitive=True)})
    storage = await open_user_storage(FakeService(entity), component="code")

    await storage.records.add(code="ABC")
    await storage.records.add(code="abc")

    with pytest.raises(Conflict):
        await storage.records.add(code="ABC")


async def test_update_into_taken_value_conflicts(storage):
    await storage.records.add(login="ann")
    bob = await storage.records.add(login="bob")

    with pytest.raises(Conflict, match="login"):
        await storage.records.update(bob, login="ANN")

    assert (await storage.records.get(bob))["login"] == "bob"


async def test_update_frees_old_unique_value(storage):
    user_id = await storage.records.add(login="ann")

    await storage.records.update(user_id, login="anna")

    assert await storage.records.find("login", "ann") is None
    assert (await storage.records.find("login", "anna"))["id"] == user_id
    assert await storage.records.add(login="ann") > user_id


async def test_hashed_field_never_read_back(storage, database_url):
    user_id = await storage.records.add(login="ann", password="s3cret")

    record = await storage.records.get(user_id)
    connection = await asyncpg.connect(database_url)
    stored = await connection.fetchval('SELECT password FROM "user" WHERE id = $1', user_id)
    await connection.close()

    assert "password" not in record
    assert stored.startswith("scrypt$")
    assert "s3cret" not in stored
    assert verify_secret(stored, "s3cret")


async def test_verify_hashed_field(storage):
    user_id = await storage.records.add(login="ann", password="s3cret")

    assert await storage.records.verify(user_id, "password", "s3cret") is True
    assert await storage.records.verify(user_id, "password", "S3cret") is False


async def test_hashes_are_salted(storage, database_url):
    await storage.records.add(login="ann", password="same")
    await storage.records.add(login="bob", password="same")

    connection = await asyncpg.connect(database_url)
    hashes = await connection.fetch('SELECT password FROM "user"')
    await connection.close()

    assert hashes[0][0] != hashes[1][0]


async def test_events_carry_record_without_hashed_fields(storage):
    user_id = await storage.records.add(login="ann", password="pw")
    await storage.records.update(user_id, level=5)
    await storage.records.delete(user_id)

    names = [name for name, _ in storage.service.events]
    payloads = [payload for _, payload in storage.service.events]

    assert names == ["user.added", "user.updated", "user.deleted"]
    assert all("password" not in payload for payload in payloads)
    assert payloads[1]["level"] == 5
    assert payloads[2]["id"] == user_id


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "missing required field 'login'"),
        ({"login": None}, "missing required field 'login'"),
        ({"login": 5}, "field 'login': expected str, got int"),
        ({"login": "a", "level": "3"}, "field 'level': expected int, got str"),
        ({"login": "a", "level": True}, "field 'level': expected int, got bool"),
        ({"login": "a", "level": 2**63}, "does not fit in 64 bits"),
        ({"login": "a", "nick": "x"}, "unknown field 'nick'"),
        ({"login": b"ann"}, "expected str, got bytes"),
        ({"login": "a", "extra": b"\x00"}, "bytes is not stored"),
        ({"login": "a", "extra": (1, 2)}, "tuple is not stored"),
        ({"login": "a", "extra": {1: "x"}}, "dict key 1 is not text"),
        ({"login": "a\x00b"}, "U+0000"),
        ({"login": "a\ud800"}, "lone surrogate"),
    ],
)
def test_entity_rejects_invalid_values(values, message):
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        USER.check_new(values)


async def test_add_rejects_invalid_value_before_writing(storage):
    with pytest.raises(InvalidRequest, match="invalid value for field 'level': expected int, got str"):
        await storage.records.add(login="ann", level="3")

    assert await storage.records.list() == []


async def test_update_cannot_clear_required_field(storage):
    user_id = await storage.records.add(login="ann")

    with pytest.raises(InvalidRequest, match="required"):
        await storage.records.update(user_id, login=None)


async def test_float_field_accepts_int(storage):
    user_id = await storage.records.add(login="ann", score=3)

    score = (await storage.records.get(user_id))["score"]

    assert score == 3.0
    assert type(score) is float


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": Field(int)}, "invalid field name 'id'"),
        ({"Login": Field(str)}, "invalid field name 'Login'"),
        ({"blob": Field(bytes)}, "bytes fields are not supported"),
        ({"pw": Field(str, hashed=True, unique=True)}, "cannot be unique"),
        ({"owner": Field(str, reference="user")}, "type must be int"),
        ({"tags": Field(list, unique=True)}, "unique field must be"),
    ],
)
def test_entity_rejects_bad_declarations(fields, message):
    with pytest.raises(ConfigError, match=message):
        Entity("thing", fields)


def test_entity_rejects_bad_name():
    with pytest.raises(ConfigError, match="invalid entity name 'Thing'"):
        Entity("Thing", {})


async def test_reference_must_exist(open_user_storage, FakeService):
    machines = await open_user_storage(FakeService(Entity("machine", {"name": Field(str)})), component="machine")
    cups_service = FakeService(Entity("cup", {"machine": Field(int, reference="machine")}))
    cups_service.owners["machine"] = machines
    cups = await open_user_storage(cups_service, component="cup")
    machine_id = await machines.records.add(name="M1")

    cup_id = await cups.records.add(machine=machine_id)

    assert (await cups.records.get(cup_id))["machine"] == machine_id
    with pytest.raises(InvalidRequest, match="field 'machine': machine 42 not found"):
        await cups.records.add(machine=42)


async def test_records_of_reads_owner_redis_then_rpc(open_user_storage, FakeService, redis_client):
    users = await open_user_storage()
    reader_service = FakeService(None)
    reader_service.owners["user"] = users
    reader = await open_user_storage(reader_service, component="stats")
    user_id = await users.records.add(login="ann", password="pw")

    hot = await reader.records_of("user").get(user_id)
    await redis_client.delete(users.keys.record(user_id))
    cold = await reader.records_of("user").get(user_id)

    assert hot == cold
    assert hot["login"] == "ann"
    assert "password" not in hot
    assert [call[1:] for call in reader_service.calls] == [("_record_get", (user_id,))]


async def test_records_of_deleted_record_raises_not_found(open_user_storage, FakeService):
    users = await open_user_storage()
    reader = await open_user_storage(FakeService(None), component="stats")
    user_id = await users.records.add(login="ann")
    await users.records.delete(user_id)

    with pytest.raises(NotFound):
        await reader.records_of("user").get(user_id)


async def test_storage_without_entity_rejects_records(open_user_storage, FakeService):
    storage = await open_user_storage(FakeService(None), component="stats")

    with pytest.raises(ConfigError, match="declares no entity"):
        storage.records


async def test_new_field_keeps_existing_records(open_user_storage, FakeService, redis_client):
    old = Entity("item", {"name": Field(str, required=True)})
    new = Entity("item", {"name": Field(str, required=True), "color": Field(str, unique=True)})
    first = await open_user_storage(FakeService(old), component="item")
    item_id = await first.records.add(name="cup")

    second = await open_user_storage(FakeService(new), component="item")
    hot = await second.records.get(item_id)
    await redis_client.delete(second.keys.record(item_id))
    cold = await second.records.get(item_id)
    other_id = await second.records.add(name="mug", color="Red")

    assert hot == {"id": item_id, "name": "cup", "color": None}
    assert cold == hot
    assert (await second.records.find("color", "red"))["id"] == other_id


async def test_schema_creation_is_idempotent(open_user_storage, FakeService):
    first = await open_user_storage()
    user_id = await first.records.add(login="ann")

    second = await open_user_storage()

    assert (await second.records.get(user_id))["login"] == "ann"


async def test_field_made_unique_later_keeps_old_values_unique(open_user_storage, FakeService):
    plain = Entity("tag", {"label": Field(str)})
    unique = Entity("tag", {"label": Field(str, unique=True)})
    first = await open_user_storage(FakeService(plain), component="tag")
    tag_id = await first.records.add(label="Red")

    second = await open_user_storage(FakeService(unique), component="tag")

    with pytest.raises(Conflict, match="label"):
        await second.records.add(label="RED")
    assert (await second.records.find("label", "red"))["id"] == tag_id


async def test_field_made_unique_over_duplicates_fails_start(open_user_storage, FakeService):
    plain = Entity("tag", {"label": Field(str)})
    first = await open_user_storage(FakeService(plain), component="tag")
    await first.records.add(label="Red")
    await first.records.add(label="red")

    with pytest.raises(ConfigError, match="field 'label' of tag is declared unique but existing records share"):
        await open_user_storage(FakeService(Entity("tag", {"label": Field(str, unique=True)})), component="tag")


async def test_changed_field_type_fails_start(open_user_storage, FakeService):
    await open_user_storage(FakeService(Entity("tag", {"weight": Field(str)})), component="tag")

    with pytest.raises(ConfigError, match="field 'weight' of tag is declared int \\(bigint\\) but its column is text"):
        await open_user_storage(FakeService(Entity("tag", {"weight": Field(int)})), component="tag")


@pytest.mark.parametrize("bad_id", ["1", 0, -3, 1.0, True, None])
async def test_record_id_must_be_positive_int(storage, bad_id):
    with pytest.raises(InvalidRequest, match="invalid record id"):
        await storage.records.get(bad_id)
    with pytest.raises(InvalidRequest, match="invalid record id"):
        await storage.records.delete(bad_id)
    with pytest.raises(InvalidRequest, match="invalid record id"):
        await storage.records.update(bad_id, level=1)


async def test_update_rehashes_hashed_field(storage):
    user_id = await storage.records.add(login="ann", password="old")

    updated = await storage.records.update(user_id, password="new")

    assert "password" not in updated
    assert await storage.records.verify(user_id, "password", "new") is True
    assert await storage.records.verify(user_id, "password", "old") is False


async def test_reader_without_database_reads_records(open_user_storage, FakeService, redis_client, app_name):
    from vv._keys import ServiceKeys
    from vv.storage import open_storage

    users = await open_user_storage()
    user_id = await users.records.add(login="ann")
    reader = await open_storage(ServiceKeys(app_name, "stats"), redis_client, None, FakeService(None))

    assert (await reader.records_of("user").get(user_id))["login"] == "ann"
    with pytest.raises(ConfigError, match="has no database"):
        reader.state
    await reader.close()
