"""Coffee machines: each has a unique name and the caffeine of one cup."""

from __future__ import annotations

import math

from vv import Conflict, InvalidRequest, Service, rpc
from vv.storage import Entity, Field

# Caffeine of one cup, in milligrams.
MIN_CAFFEINE_MG = 0
MAX_CAFFEINE_MG = 1000
PAGE_SIZE = 1000


def parse_caffeine(value: object) -> float:
    """Return the caffeine of one cup in milligrams; numeric text (from a query string) is accepted.

    Raise ``InvalidRequest`` naming the value and the allowed range otherwise.
    """
    rule = f"use a number of milligrams from {MIN_CAFFEINE_MG} to {MAX_CAFFEINE_MG}"
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InvalidRequest(f"invalid caffeine {value!r}: {rule}") from None
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise InvalidRequest(f"invalid caffeine {value!r}: {rule}")
    if not MIN_CAFFEINE_MG <= number <= MAX_CAFFEINE_MG:
        raise InvalidRequest(f"invalid caffeine {value!r}: {rule}")
    return float(number)


class Machine(Service):
    """Owns the ``machine`` records: name unique, caffeine per cup in milligrams."""

    entity = Entity(
        "machine",
        {
            "name": Field(str, required=True, unique=True),
            "caffeine": Field(float, required=True),
        },
    )

    @rpc(http=["GET", "POST"])
    async def request(self, machine_id: int | None = None, *, name: str | None = None, caffeine: object = None) -> dict:
        """Return machine ``machine_id`` (GET /machine/<id>) or add a machine (POST /machine) and return its id."""
        if machine_id is not None:
            given = [field for field, value in (("name", name), ("caffeine", caffeine)) if value is not None]
            if given:
                raise InvalidRequest(f"a machine lookup takes no fields, got {', '.join(given)}; add one with POST /machine")
            return await self.records.get(machine_id)
        return await self._add(name, caffeine)

    @rpc(http=["GET"], name="list")
    async def list_machines(self) -> dict:
        """Return every machine, ordered by id."""
        machines: list[dict] = []
        while page := await self.records.list(after_id=machines[-1]["id"] if machines else 0, limit=PAGE_SIZE):
            machines += page
        return {"machines": machines}

    async def _add(self, name: str | None, caffeine: object) -> dict:
        missing = [field for field, value in (("name", name), ("caffeine", caffeine)) if value in (None, "")]
        if missing:
            raise InvalidRequest(f"missing required fields: {', '.join(missing)}")
        if not isinstance(name, str):
            raise InvalidRequest(f"invalid name: expected a string, got {type(name).__name__}")

        try:
            return {"id": await self.records.add({"name": name, "caffeine": parse_caffeine(caffeine)})}
        except Conflict as exc:
            raise Conflict(f"machine already exists: name {name!r} is taken") from exc
