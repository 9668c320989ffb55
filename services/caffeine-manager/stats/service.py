"""Statistics of coffee purchases: lists of coffees and a user's caffeine level.

Stats reads the coffee service's ``coffee.added`` events through its own
consumer group, so a coffee bought while stats was down is counted when it
comes back. It appends each coffee to three stored lists: all coffees, the
user's and the machine's. Delivery is at least once, so a list may hold a
coffee twice; every read drops repeats by coffee id, so each coffee counts
once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

from vv import InvalidRequest, Service, rpc, subscribe

ALL_COFFEES = "coffees"
COFFEE_FIELDS = ("user_id", "login", "machine_id", "machine_name", "caffeine", "bought_at")

# --- the caffeine level ------------------------------------------------

HOUR_S = 3600
# Coffees older than this many whole hours no longer count.
WINDOW_HOURS = 24
# A cup's caffeine falls linearly to zero over this many whole hours.
DECAY_HOURS = 10
# Ceiling of the level and of each hourly bucket, in milligrams.
MAX_LEVEL_MG = 100


def whole_hours_between(bought_at: datetime, now: datetime) -> int:
    """Return the whole hours from ``bought_at`` to ``now``; 0 for a time not yet past."""
    return max(0, int((now - bought_at).total_seconds() // HOUR_S))


def caffeine_level(coffees: Iterable[tuple[datetime, float]], now: datetime) -> tuple[float, list[float]]:
    """Return the caffeine level and the 24 hourly buckets at ``now`` for ``(bought_at, caffeine_mg)`` pairs.

    A coffee at most 24 whole hours old adds ``c × (1 − 0.1 × min(h, 10))``
    to the level, where ``h`` is its age in whole hours, and the level is
    capped at 100 after each addition. Bucket ``h`` sums the raw caffeine of
    the coffees bought ``h`` whole hours ago, capped at 100. The factor is
    computed as ``(10 − min(h, 10)) / 10`` so that 5 mg bought three hours ago
    adds exactly 3.5.
    """
    level = 0.0
    window = [0.0] * WINDOW_HOURS
    for bought_at, caffeine_mg in coffees:
        hours = whole_hours_between(bought_at, now)
        if hours > WINDOW_HOURS:
            continue
        level = min(MAX_LEVEL_MG, level + caffeine_mg * (DECAY_HOURS - min(hours, DECAY_HOURS)) / DECAY_HOURS)
        if hours < WINDOW_HOURS:
            window[hours] = min(MAX_LEVEL_MG, window[hours] + caffeine_mg)
    return level, window


# --- the service -------------------------------------------------------


def user_list(user_id: int) -> str:
    return f"user:{user_id}"


def machine_list(machine_id: int) -> str:
    return f"machine:{machine_id}"


def unique_coffees(items: list[dict]) -> list[dict]:
    """Drop repeated coffees (same id) from a list, keeping the first.

    A list contains a coffee twice when its event was delivered again after
    the append and before the acknowledgement.
    """
    seen: set[int] = set()
    result = []
    for item in items:
        if item["id"] not in seen:
            seen.add(item["id"])
            result.append(item)
    return result


def in_order_bought(coffees: list[dict]) -> list[dict]:
    """Sort coffees by the time they were bought, then by id; timestamps may carry different zones."""
    return sorted(coffees, key=lambda coffee: (datetime.fromisoformat(coffee["bought_at"]), coffee["id"]))


def check_id(value: object, what: str) -> int:
    """Return ``value`` if it is an integer id; raise InvalidRequest naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"invalid {what} id {value!r}: expected an integer")
    return value


class Stats(Service):
    """Counts coffees from the coffee service's events and reports them per user and machine."""

    @subscribe("coffee", "coffee.added")
    async def on_coffee(self, event: dict) -> None:
        """Append one coffee to the list of all coffees and to its user's and machine's lists."""
        coffee = {"id": event["id"], **{name: event.get(name) for name in COFFEE_FIELDS}}
        await asyncio.gather(
            self.list(ALL_COFFEES).append(coffee),
            self.list(user_list(coffee["user_id"])).append(coffee),
            self.list(machine_list(coffee["machine_id"])).append(coffee),
        )

    @rpc(http=["GET"])
    async def coffee(self) -> dict:
        """Return every counted coffee in the order bought, and the count."""
        return await self._coffees(ALL_COFFEES)

    @rpc(http=["GET"])
    async def coffee_count(self) -> dict:
        """Return how many coffees were counted."""
        return {"count": len(unique_coffees(await self.list(ALL_COFFEES).items()))}

    @rpc(http=["GET"])
    async def coffee_user(self, user_id: int) -> dict:
        """Return the coffees of one user in the order bought, and the count."""
        return await self._coffees(user_list(check_id(user_id, "user")))

    @rpc(http=["GET"])
    async def coffee_machine(self, machine_id: int) -> dict:
        """Return the coffees bought at one machine in the order bought, and the count."""
        return await self._coffees(machine_list(check_id(machine_id, "machine")))

    @rpc(http=["GET"])
    async def level_user(self, user_id: int) -> dict:
        """Return a user's caffeine level now and the caffeine bought in each of the last 24 hours."""
        coffees = unique_coffees(await self.list(user_list(check_id(user_id, "user"))).items())
        now = datetime.now(UTC)
        level, window = caffeine_level(
            ((datetime.fromisoformat(coffee["bought_at"]), coffee["caffeine"]) for coffee in coffees), now
        )
        return {"user_id": user_id, "level": level, "window": window}

    async def _coffees(self, list_name: str) -> dict:
        coffees = in_order_bought(unique_coffees(await self.list(list_name).items()))
        return {"result": coffees, "count": len(coffees)}
