"""Every key of one storage operation lies in one Redis Cluster slot."""

from __future__ import annotations

import pytest
import redis.asyncio
from redis.crc import key_slot

from vv import Entity, Field, Service
from vv._errors import Conflict
from vv._keys import ServiceKeys
from vv.storage import open_storage
from vvkit.local.servers import start_cluster

# Names that would move a key to another slot if they came before the tag
# or if the tag were not the first brace pair.
USER_DATA = ["plain", "{other}", "}{", "a{b}c", "{", "}", "{}", "😀", "x:y"]


def test_storage_keys_share_the_service_slot():
    keys = ServiceKeys("shop", "user")
    slot = key_slot(keys.tag.encode())

    built = [keys.record(7), keys.unique_index("login")]
    built += [keys.stored_list(name) for name in USER_DATA]
    built += [keys.state(name) for name in USER_DATA]

    assert {key_slot(key.encode()) for key in built} == {slot}


@pytest.fixture
async def cluster_client(tmp_path):
    nodes = start_cluster(tmp_path / "cluster", masters=3)
    client = redis.asyncio.RedisCluster(host="127.0.0.1", port=nodes[0].port)
    yield client
    await client.aclose()
    for node in nodes:
        node.stop()


@pytest.mark.cluster
async def test_storage_works_on_redis_cluster(cluster_client, app_name, database_url, FakeService):
    storage = await open_storage(ServiceKeys(app_name, "user"), cluster_client, database_url, FakeService())
    reader = await open_storage(ServiceKeys(app_name, "stats"), cluster_client, database_url, FakeService(None))

    user_id = await storage.records.add(login="{Ann}")
    await storage.records.update(user_id, login="a{b}c", level=2)
    with pytest.raises(Conflict):
        await storage.records.add(login="A{B}C")
    found = await storage.records.find("login", "A{b}C")
    foreign = await reader.records_of("user").get(user_id)
    await storage.list("}{").append(1)
    await storage.state.set("{x}", [1])

    assert found["id"] == user_id
    assert foreign["level"] == 2
    assert await storage.list("}{").items() == [1]
    assert await storage.state.get("{x}") == [1]
    await storage.records.delete(user_id)
    await storage.close()
    await reader.close()


class Note(Service):
    entity = Entity("note", {"text": Field(str, unique=True)})


@pytest.mark.cluster
async def test_record_events_on_redis_cluster(cluster_client, app_name, database_url):
    # The service is never run: its storage gets the cluster client, and the
    # write script appends record events to the service's event stream.
    service = Note(app=app_name)
    storage = await open_storage(service.keys, cluster_client, database_url, service)

    note_id = await storage.records.add(text="{a}")
    await storage.records.update(note_id, text="b")
    await storage.records.delete(note_id)
    entries = await cluster_client.xrange(service.keys.events)
    await storage.close()
    await service.redis.aclose()

    assert [fields[b"event"] for _, fields in entries] == [b"note.added", b"note.updated", b"note.deleted"]
    assert entries[0][1][b"body"] == b'{"id":1,"text":"{a}"}'
