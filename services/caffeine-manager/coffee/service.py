"""Coffee purchases: who bought a cup at which machine, and when.

Users and machines are read from their owners' records in Redis (falling
back to an internal RPC on a miss), never over HTTP. Each purchase is stored
as a ``coffee`` record, whose ``coffee.added`` event the stats service
counts.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from vv import InvalidRequest, Service, rpc
from vv.storage import Entity, Field

PAGE_SIZE = 1000


def parse_timestamp(text: object, now: datetime) -> datetime:
    """Return an ISO 8601 timestamp with a zone as an aware datetime; raise InvalidRequest otherwise.

    A time after ``now`` is rejected: a coffee cannot be bought in the future.
    """
    if not isinstance(text, str):
        raise InvalidRequest(f"invalid timestamp {text!r}: use ISO 8601 text with a zone, such as 2026-01-31T08:15:00+01:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"invalid timestamp {text!r}: use ISO 8601 with a zone, such as 2026-01-31T08:15:00+01:00") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidRequest(f"invalid timestamp {text!r}: the zone is missing; add Z or an offset such as +01:00")
    if parsed > now:
        raise InvalidRequest(f"invalid timestamp {text!r}: it is in the future (now is {now.isoformat()})")
    return parsed


def check_id(value: object, what: str) -> int:
    """Return ``value`` if it is an integer id; raise InvalidRequest naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"invalid {what} id {value!r}: expected an integer")
    return value


class Coffee(Service):
    """Owns the ``coffee`` records: one per cup bought, with copies of the user's and machine's fields."""

    entity = Entity(
        "coffee",
        {
            "user_id": Field(int, required=True),
            "login": Field(str, required=True),
            "machine_id": Field(int, required=True),
            "machine_name": Field(str, required=True),
            "caffeine": Field(float, required=True),
            "bought_at": Field(str, required=True),
        },
    )

    @rpc(http=["GET", "PUT"])
    async def buy(self, user_id: int, machine_id: int, timestamp: object = None) -> dict:
        """Record a coffee bought by ``user_id`` at ``machine_id``, now or at ``timestamp``; return its id.

        ``timestamp`` is annotated ``object`` so that parse_timestamp, not
        the generic argument check, words every invalid value as
        "invalid timestamp".
        """
        now = datetime.now(UTC)
        bought_at = now if timestamp is None else parse_timestamp(timestamp, now)
        # Both reads raise NotFound ("user 7 not found") for a missing record.
        user, machine = await asyncio.gather(
            self.records_of("user").get(check_id(user_id, "user")),
            self.records_of("machine").get(check_id(machine_id, "machine")),
        )

        coffee_id = await self.records.add(
            {
                "user_id": user["id"],
                "login": user["login"],
                "machine_id": machine["id"],
                "machine_name": machine["name"],
                "caffeine": machine["caffeine"],
                "bought_at": bought_at.isoformat(),
            }
        )
        return {"id": coffee_id}

    @rpc(http=["GET"])
    async def count(self) -> dict:
        """Return how many coffees are stored, counted in PostgreSQL page by page."""
        # NOTE: pages through every record because the storage API has no
        # count; switch to a count query if Records gains one.
        total, after_id = 0, 0
        while page := await self.records.list(after_id=after_id, limit=PAGE_SIZE):
            total += len(page)
            after_id = page[-1]["id"]
        return {"count": total}
