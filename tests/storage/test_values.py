"""Values come back equal and of the same type from every read path."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest

from vv.storage import Entity, Field

TEXTS = ["", "None", "null", "0", "false", "line\nbreak\r\n", "\x01\x07\x1b\x7f\t", "😀 𝄞 \U0010ffff", "{x}", "a}{b", "é"]
FLOATS = [0.0, -0.0, 0.1, 1 / 3, 1e300, 5e-324, -1.7976931348623157e308, math.inf, -math.inf, 2.0**53 + 2]
JSON_VALUES: list[Any] = [
    None, "", "None", 0, False, True, -1, 2**70, 0.1, -0.0, 1e300, "\x00 nul", "😀",
    [], {}, [None, "", 0, False], {"k": {"nested": [1.5, "x\n"]}, "{tag}": "}{"},
]

ENTITY = Entity(
    "value",
    {
        "text": Field(str, unique=True, case_sensitive=True),
        "number": Field(int),
        "real": Field(float),
        "flag": Field(bool),
        "anything": Field(object),
        "mapping": Field(dict),
        "sequence": Field(list),
    },
)

CASES: list[dict[str, Any]] = (
    [{"text": text} for text in TEXTS]
    + [{"real": real} for real in FLOATS]
    + [{"anything": value} for value in JSON_VALUES]
    + [
        {"number": 0, "flag": False, "text": "zero"},
        {"number": -(2**63), "flag": True, "text": "min"},
        {"number": 2**63 - 1, "text": "max"},
        {"mapping": {"a": None, "b": "", "c": [0.1]}, "sequence": ["None", None, 0, False, 0.0]},
        {"mapping": {}, "sequence": []},
    ]
)


def assert_identical(actual: Any, expected: Any, path: str = "value") -> None:
    """Assert equal value and type, floats compared bit for bit."""
    assert type(actual) is type(expected), f"{path}: {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, float):
        assert struct.pack("<d", actual) == struct.pack("<d", expected), f"{path}: {actual!r} != {expected!r}"
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for index, (got, want) in enumerate(zip(actual, expected)):
            assert_identical(got, want, f"{path}[{index}]")
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), path
        for key in expected:
            assert_identical(actual[key], expected[key], f"{path}[{key!r}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def check_record(record: dict, values: dict) -> None:
    for name in ENTITY.fields:
        assert_identical(record[name], values.get(name), name)


@pytest.fixture
async def value_storage(open_user_storage, FakeService):
    return await open_user_storage(FakeService(ENTITY), component="value")


async def test_values_round_trip_every_read(open_user_storage, FakeService, value_storage, redis_client):
    ids = [await value_storage.records.add(values) for values in CASES]

    hot = [await value_storage.records.get(record_id) for record_id in ids]
    for record_id in ids:
        await redis_client.delete(value_storage.keys.record(record_id))
    cold = [await value_storage.records.get(record_id) for record_id in ids]
    listed = await value_storage.records.list(limit=1000)
    restarted = await open_user_storage(FakeService(ENTITY), component="value")
    for record_id in ids:
        await redis_client.delete(value_storage.keys.record(record_id))
    after_restart = [await restarted.records.get(record_id) for record_id in ids]
    refilled = [await restarted.records.get(record_id) for record_id in ids]

    for values, *reads in zip(CASES, hot, cold, listed, after_restart, refilled):
        for record in reads:
            check_record(record, values)


async def test_values_round_trip_as_json(value_storage):
    finite = [values for values in CASES if not _has_infinity(values)]
    ids = [await value_storage.records.add(values) for values in finite]

    for values, record_id in zip(finite, ids):
        record = await value_storage.records.get(record_id)
        check_record(json.loads(json.dumps(record)), values)


async def test_values_round_trip_in_update(value_storage):
    record_id = await value_storage.records.add(text="start")

    for values in CASES[1:]:
        changes = {name: values.get(name) for name in ENTITY.fields if name != "text"}
        updated = await value_storage.records.update(record_id, changes)
        for name, value in changes.items():
            assert_identical(updated[name], value, name)
            assert_identical((await value_storage.records.get(record_id))[name], value, name)


async def test_unique_values_with_braces_stay_in_one_slot(value_storage, redis_client):
    ids = [await value_storage.records.add(text=text) for text in TEXTS]

    for text, record_id in zip(TEXTS, ids):
        assert (await value_storage.records.find("text", text))["id"] == record_id
    index_key = value_storage.keys.unique_index("text")
    assert await redis_client.hlen(index_key) == len(TEXTS)


async def test_state_values_round_trip(storage, open_user_storage, redis_client):
    for index, value in enumerate(JSON_VALUES + FLOATS):
        await storage.state.set(f"v{index}", value)
    hot = [await storage.state.get(f"v{index}", "missing") for index in range(len(JSON_VALUES + FLOATS))]
    for index in range(len(JSON_VALUES + FLOATS)):
        await redis_client.delete(storage.keys.state(f"v{index}"))
    restarted = await open_user_storage()
    cold = [await restarted.state.get(f"v{index}", "missing") for index in range(len(JSON_VALUES + FLOATS))]

    for value, got_hot, got_cold in zip(JSON_VALUES + FLOATS, hot, cold):
        assert_identical(got_hot, value)
        assert_identical(got_cold, value)


async def test_list_values_round_trip(storage, redis_client):
    items = storage.list("values {x}")
    for value in JSON_VALUES + FLOATS:
        await items.append(value)

    hot = await items.items()
    await redis_client.delete(items.key)
    cold = await items.items()

    for got in (hot, cold):
        assert len(got) == len(JSON_VALUES + FLOATS)
        for value, item in zip(JSON_VALUES + FLOATS, got):
            assert_identical(item, value)


def _has_infinity(values: dict) -> bool:
    real = values.get("real")
    return isinstance(real, float) and math.isinf(real)
