"""The caffeine level and hourly window of the stats service, with the time given."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

SERVICE_FILE = Path(__file__).resolve().parents[2] / "services" / "caffeine-manager" / "stats" / "service.py"


def load_stats():
    spec = importlib.util.spec_from_file_location("caffeine_manager__stats__service_level", SERVICE_FILE)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


stats = load_stats()
NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


def test_level_worked_example():
    coffees = [
        (NOW - timedelta(minutes=30), 8),
        (NOW - timedelta(hours=3, minutes=20), 5),
        (NOW - timedelta(hours=12), 9),
        (NOW - timedelta(hours=26), 4),
    ]

    level, window = stats.caffeine_level(coffees, NOW)

    assert level == 11.5
    assert len(window) == 24
    assert window[0] == 8
    assert window[3] == 5
    assert window[12] == 9
    assert [value for hour, value in enumerate(window) if hour not in (0, 3, 12)] == [0] * 21


def test_level_capped_at_100():
    coffees = [(NOW - timedelta(minutes=5), 80), (NOW - timedelta(minutes=10), 80)]

    level, window = stats.caffeine_level(coffees, NOW)

    assert level == 100
    assert window[0] == 100


def test_level_decays_linearly_over_ten_hours():
    for hours, expected in [(0, 50), (1, 45), (5, 25), (9, 5), (10, 0), (20, 0)]:
        level, _ = stats.caffeine_level([(NOW - timedelta(hours=hours, minutes=1), 50)], NOW)
        assert level == expected, f"{hours} h"


def test_window_edges():
    coffees = [
        (NOW - timedelta(hours=23, minutes=59), 7),  # 23 whole hours: last bucket
        (NOW - timedelta(hours=24), 6),  # 24 whole hours: counted for the level (0 after decay), no bucket
        (NOW - timedelta(hours=25), 5),
    ]

    level, window = stats.caffeine_level(coffees, NOW)

    assert window[23] == 7
    assert sum(window) == 7
    assert level == 0


def test_future_coffee_counts_as_this_hour():
    level, window = stats.caffeine_level([(NOW + timedelta(minutes=2), 10)], NOW)

    assert level == 10
    assert window[0] == 10


def test_whole_hours_ignore_zone():
    bought_at = datetime.fromisoformat("2026-03-14T13:10:00+01:00")  # 12:10 UTC

    assert stats.whole_hours_between(bought_at, NOW) == 2


def test_unique_coffees_drops_repeats():
    items = [{"id": 1}, {"id": 2}, {"id": 1}, {"id": 3}]

    assert stats.unique_coffees(items) == [{"id": 1}, {"id": 2}, {"id": 3}]


@pytest.mark.parametrize("value", ["3", 2.0, True, None])
def test_check_id_rejects_non_integers(value):
    with pytest.raises(stats.InvalidRequest, match="invalid user id"):
        stats.check_id(value, "user")
