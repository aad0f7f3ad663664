"""Pendo specifics beyond the contract: hosts, days, feature usage, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from pmsync.connectors.pendo import PendoConnector
from pmsync.connectors.pendo.connector import UsageCursor
from pmsync.connectors.pendo.settings import PendoSettings
from pmsync.errors import FatalError, RetriableError
from pmsync.simulators.pendo import FEATURES, PendoSimulator, generate
from pmsync.sync.engine import SyncEngine
from pmsync.sync.store.store import Store
from pmsync.testing.contract import key_mapping

NOW = 1_790_000_000 // 86_400 * 86_400 + 43_200
FEATURE_ID = {name: fid for fid, name in FEATURES}


@pytest.fixture
def sim() -> Iterator[PendoSimulator]:
    simulator = PendoSimulator(clock=lambda: NOW, timezone="America/New_York")
    simulator.start()
    generate(simulator, accounts=4, days=6, seed=2)
    yield simulator
    simulator.stop()


def pendo(sim: PendoSimulator, **options: object) -> PendoConnector:
    settings = PendoSettings.model_validate(
        {
            "base_url": sim.base_url,
            "integration_key": SecretStr(sim.integration_key),
            "timezone": "America/New_York",
            "requests_per_minute": 100_000,
            **options,
        }
    )
    connector = PendoConnector("pendo", settings)
    connector.clock = lambda: NOW
    return connector


def test_region_picks_the_host_and_base_url_wins() -> None:
    key = SecretStr("k")
    assert PendoSettings(integration_key=key, region="eu").api_root() == "https://app.eu.pendo.io"
    assert PendoSettings(integration_key=key, region="jpn").api_root() == (
        "https://app.jpn.pendo.io"
    )
    assert PendoSettings(integration_key=key).api_root() == "https://app.pendo.io"
    local = PendoSettings(integration_key=key, region="au", base_url="http://127.0.0.1:9")
    assert local.api_root() == "http://127.0.0.1:9"


def test_usage_matches_the_source_per_day_in_the_subscription_time_zone(
    sim: PendoSimulator,
) -> None:
    connector = pendo(sim, backfill_days=4, slice_days=3)
    fields = frozenset({"feature:Export CSV", f"feature:{FEATURE_ID['Dashboards']}"})
    pages = list(connector.read(connector.stream("usage"), None, fields=fields))
    yesterday = sim.today() - timedelta(days=1)
    assert [p.cursor for p in pages] == [
        UsageCursor(last_day=yesterday - timedelta(days=1), reread_ms=NOW * 1000),
        UsageCursor(last_day=yesterday, reread_ms=NOW * 1000),
    ]
    records = {r["id"]: r for p in pages for r in p.records}
    truth = sim.usage_truth(yesterday - timedelta(days=3), yesterday)
    assert set(records) == {f"{a}:{d}" for a, d in truth}  # today (partial) is not read
    exports = sim.usage_truth(yesterday - timedelta(days=3), yesterday, FEATURE_ID["Export CSV"])
    for (account, day), totals in truth.items():
        record = records[f"{account}:{day}"]
        assert record["numEvents"] == totals["numEvents"]
        assert record["activeVisitors"] == totals["activeVisitors"]
        feature = record["feature:Export CSV"]
        assert feature["numEvents"] == exports.get((account, day), {}).get("numEvents", 0)
        assert record["features"]["Export CSV"] == feature
        assert f"feature:{FEATURE_ID['Dashboards']}" in record


def test_the_reread_window_covers_late_days_but_a_caught_up_cursor_costs_nothing(
    sim: PendoSimulator,
) -> None:
    connector = pendo(sim, reread_days=2)
    yesterday = sim.today() - timedelta(days=1)
    assert connector.usage_range(yesterday) == (yesterday - timedelta(days=1), yesterday)
    assert connector.usage_range(yesterday - timedelta(days=30)) == (
        yesterday - timedelta(days=29),
        yesterday,
    )
    assert pendo(sim, reread_days=0).usage_range(yesterday) is None
    assert connector.usage_range(date(2100, 1, 1)) is None


def test_an_unknown_feature_is_named_with_a_suggestion(sim: PendoSimulator) -> None:
    connector = pendo(sim, backfill_days=1)
    with pytest.raises(FatalError, match=r"feature 'Export CVS'.*did you mean 'Export CSV'"):
        list(
            connector.read(
                connector.stream("usage"), None, fields=frozenset({"feature:Export CVS"})
            )
        )


def test_429_is_retriable_with_retry_after(sim: PendoSimulator) -> None:
    sim.inject(429, path_prefix="/api/v1/aggregation", headers={"Retry-After": "12"})
    connector = pendo(sim)
    with pytest.raises(RetriableError) as info:
        list(connector.read(connector.stream("accounts"), None))
    assert info.value.retry_after == 12
    assert sim.integration_key not in str(info.value)


def test_the_key_travels_in_its_header_only(sim: PendoSimulator) -> None:
    connector = pendo(sim)
    connector.check()
    request = sim.requests[-1]
    assert request.headers["x-pendo-integration-key"] == sim.integration_key
    assert sim.integration_key not in request.path + str(request.query)


def test_a_caught_up_cycle_reads_the_reread_window_in_one_request_per_source(
    sim: PendoSimulator,
) -> None:
    connector = pendo(sim, reread_days=3, backfill_days=10, reread_interval="15m")
    fields = frozenset({"feature:Export CSV"})
    pages = list(connector.read(connector.stream("usage"), None, fields=fields))
    sim.reset_log()
    connector.clock = lambda: NOW + 15 * 60
    again = list(connector.read(connector.stream("usage"), pages[-1].cursor, fields=fields))
    assert len(again) == 1
    assert again[0].cursor == UsageCursor(
        last_day=sim.today() - timedelta(days=1), reread_ms=(NOW + 15 * 60) * 1000
    )
    # One events request and one for the named features (the catalog is cached).
    assert len(sim.requests_to("/api/v1/aggregation")) == 2


@pytest.mark.parametrize("stream", ["usage", "nps_responses"])
def test_a_caught_up_stream_asks_nothing_until_its_reread_is_due(
    sim: PendoSimulator, stream: str
) -> None:
    """An idle poll between re-reads costs no request; a newly finished day is read at once."""
    connector = pendo(sim, reread_days=3, backfill_days=10, reread_interval="15m")
    fields = frozenset({"feature:Export CSV"}) if stream == "usage" else frozenset()
    spec = connector.stream(stream)
    pages = list(connector.read(spec, None, fields=fields))
    cursor = pages[-1].cursor
    sim.reset_log()
    connector.clock = lambda: NOW + 15 * 60 - 1
    assert list(connector.read(spec, cursor, fields=fields)) == []
    assert sim.requests == []
    # A day finished since the cursor: read now, with the re-read window, whatever the time.
    assert isinstance(cursor, UsageCursor)
    assert cursor.last_day is not None
    behind = cursor.model_copy(update={"last_day": cursor.last_day - timedelta(days=1)})
    assert len(list(connector.read(spec, behind, fields=fields))) == 1
    assert sim.requests != []
    # reread_interval 0s: every cycle re-reads, as before.
    sim.reset_log()
    every = pendo(sim, reread_days=3, backfill_days=10, reread_interval="0s")
    assert len(list(every.read(every.stream(stream), cursor, fields=fields))) == 1
    assert sim.requests != []


def test_the_engine_waits_as_retry_after_says_and_converges(
    sim: PendoSimulator, tmp_path: Path
) -> None:
    connector = pendo(sim, backfill_days=5)
    spec = connector.stream("usage")
    sim.inject(429, path_prefix="/api/v1/aggregation", headers={"Retry-After": "3"})
    sleeps: list[float] = []
    store = Store(f"sqlite:///{tmp_path / 'pendo.db'}")
    engine = SyncEngine(store, run_id="t", sleep=sleeps.append)
    result = engine.sync_stream(connector, spec, key_mapping(connector, spec))
    assert result.status == "ok", result.error
    assert sleeps == [3.0]
    yesterday = sim.today() - timedelta(days=1)
    truth = sim.usage_truth(yesterday - timedelta(days=4), yesterday)
    assert store.live_keys("pendo", "usage") == {f"{a}:{d}" for a, d in truth}
    store.close()
