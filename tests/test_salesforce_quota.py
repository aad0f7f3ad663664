"""The daily API allocation: a reserve kept for other integrations, a clean stop, a later resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.app.runtime import Runtime
from pmsync.connectors.salesforce import SalesforceConnector
from pmsync.connectors.salesforce.quota import QuotaGuard, parse_limit_info
from pmsync.errors import QuotaExhausted
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.salesforce import SalesforceSimulator, generate
from tests.salesforce_support import make_connector, read_pages, running, write_config


@pytest.fixture
def sim() -> Iterator[SalesforceSimulator]:
    yield from running(SalesforceSimulator())


def test_limit_info_header_is_parsed() -> None:
    assert parse_limit_info("api-usage=18/5000") == (18, 5000)
    header = "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"
    assert parse_limit_info(header) == (25, 5000)
    assert parse_limit_info("") is None


def test_guard_stops_at_the_reserve_and_rechecks_once_per_interval(clock: FakeClock) -> None:
    guard = QuotaGuard("sf", reserve_percent=20, recheck_seconds=900, clock=clock)
    guard.begin()
    guard.acquire("GET", "https://x/services/data/v59.0/limits")  # nothing known yet
    guard.observe(79, 100)
    guard.acquire("GET", "https://x/services/data/v59.0/query/")  # the 80th call is allowed
    guard.observe(80, 100)
    with pytest.raises(QuotaExhausted, match="used 80 of 100; 20 kept"):
        guard.acquire("GET", "https://x/services/data/v59.0/query/")
    guard.acquire("POST", "https://x/services/oauth2/token")  # logins do not count
    guard.begin()
    with pytest.raises(QuotaExhausted):  # figures are fresh: no probe
        guard.acquire("GET", "https://x/services/data/v59.0/query/")
    clock.advance(900)
    guard.begin()
    guard.acquire("GET", "https://x/services/data/v59.0/query/")  # one probe
    with pytest.raises(QuotaExhausted):
        guard.acquire("GET", "https://x/services/data/v59.0/query/")


def test_reserve_holds_and_the_next_cycle_finishes(
    sim: SalesforceSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store_url: str,
    clock: FakeClock,
) -> None:
    """Allocation 40, 10 already used by others, 25% reserve: pmsync may use 20 calls."""
    generate(sim, accounts=1500, contacts=3000, seed=9)
    sim.api_allocation = 40
    sim.roll_quota(used=10)
    monkeypatch.setenv("PMSYNC_TEST_SF_SECRET", sim.client_secret)
    config = write_config(tmp_path, sim, extra="quota_reserve_percent = 25", store_url=store_url)
    runtime = Runtime.load(str(config))
    connector = runtime.connector("salesforce")
    assert isinstance(connector, SalesforceConnector)
    connector.guard.clock = clock

    first = runtime.run_once()
    assert sim.api_used == 30, "stopped exactly where the reserve starts"
    # Account (describe and 8 pages; a first read needs no census) fits; Contact stops after
    # its describe and first 10 pages.
    assert [(r.stream, r.status) for r in first] == [("Account", "ok"), ("Contact", "paused")]
    assert "reserve" in str(first[1].error)
    partial = runtime.store.stream_counts()[("salesforce", "Contact")].live
    assert 0 < partial < 3000

    status = CliRunner().invoke(cli, ["--config", str(config), "status", "--json"])
    rows = {row["stream"]: row for row in json.loads(status.output)}
    assert rows["salesforce.Contact"]["status"] == "paused"
    assert "reserve" in rows["salesforce.Contact"]["last_error"]

    second = runtime.run_once()
    assert [r.status for r in second] == ["paused"], "figures still fresh: not one call"
    assert sim.api_used == 30

    sim.roll_quota(used=0)  # the rolling 24-hour window moved on
    clock.advance(15 * 60)
    third = runtime.run_once()
    assert [(r.stream, r.status) for r in third] == [
        ("Account", "ok"),
        ("Contact", "ok"),
        ("Opportunity", "ok"),  # the shipped mapping's third stream, read for the first time
        ("CurrencyType", "ok"),  # a single-currency org: nothing to read
    ]
    results = first + second + third
    assert runtime.store.live_keys("salesforce", "Account") == sim.live_ids("Account")
    assert runtime.store.live_keys("salesforce", "Contact") == sim.live_ids("Contact")
    assert sum(r.inserted for r in results) == 1500 + 3000  # nothing lost, nothing twice
    assert sum(r.updated for r in results) == 0
    runtime.close()


def test_request_limit_exceeded_stops_cleanly(sim: SalesforceSimulator) -> None:
    generate(sim, accounts=10, contacts=0)
    connector = make_connector(sim)
    connector.check()
    sim.roll_quota(used=sim.api_allocation)  # other integrations used it all
    with pytest.raises(QuotaExhausted, match="REQUEST_LIMIT_EXCEEDED"):
        read_pages(connector, connector.stream("Account"))
    assert connector.guard.exhausted()
    connector.close()
