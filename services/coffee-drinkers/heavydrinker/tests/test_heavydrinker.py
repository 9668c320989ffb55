"""Starter test of coffee-drinkers/heavydrinker: the option rules and the report format.

The load loop itself is tested against an HTTP server in the repository's
tests/caffeine/test_heavydrinker.py.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

SERVICE_FILE = Path(__file__).resolve().parents[1] / "service.py"


def load_service_module():
    # Load service.py under a name of its own, so that the starter tests of
    # several components can run in one pytest session.
    name = "coffee_drinkers__heavydrinker__service"
    spec = importlib.util.spec_from_file_location(name, SERVICE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


heavydrinker = load_service_module()


def test_command_line_overrides_environment(monkeypatch):
    monkeypatch.setenv("CONCURRENCY", "4")
    monkeypatch.setenv("FACTOR", "2")

    options, json_path = heavydrinker.parse_args(["--factor", "7", "--rounds", "3"])

    assert options == heavydrinker.LoadOptions(heavydrinker.DEFAULT_GATEWAY_URL, factor=7, concurrency=4, rounds=3)
    assert json_path is None


def test_invalid_concurrency_rejected():
    with pytest.raises(ValueError, match="invalid concurrency 0"):
        heavydrinker.LoadOptions(concurrency=0)


def test_report_lists_routes():
    recorder = heavydrinker.Recorder()
    recorder.record("PUT /coffee/buy", 200, 0.010)
    recorder.record("PUT /coffee/buy", 503, 0.020)
    report = recorder.report(elapsed_s=1.0)
    report.update(rounds=1, users=0, machines=0, buys_ok=1, buys_per_s=1.0, buy_phase_s=0.5, buys_per_buy_phase_s=2.0)

    text = heavydrinker.format_report(report)

    assert "errors by status: 503: 1" in text
    assert "PUT /coffee/buy" in text
    assert "2.0/s during the 0.5 s of buy phases" in text
