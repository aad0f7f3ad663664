"""Currency: the shipped mapping reads Salesforce CurrencyType, and the CRM's rates win over the
configured ones, as the documentation says (issue 11, item 10)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pmsync.app.runtime import Runtime
from pmsync.simulators.salesforce import SalesforceSimulator
from pmsync.simulators.salesforce.data import install_currencies, install_schema
from tests.conftest import REPO
from tests.salesforce_support import MY_DOMAIN, running


@pytest.fixture
def sim() -> Iterator[SalesforceSimulator]:
    yield from running(SalesforceSimulator())


def config(tmp_path: Path, sim: SalesforceSimulator, currency: str) -> str:
    path = tmp_path / "pmsync.toml"
    path.write_text(
        f"""
[store]
url = "sqlite:///{tmp_path / "pmsync.db"}"
[mappings]
paths = ["{REPO / "mappings" / "salesforce.toml"}"]
[currency]
{currency}
[connectors.salesforce]
type = "salesforce"
base_url = "{sim.base_url}"
my_domain = "{MY_DOMAIN}"
bulk_threshold = 100000
[connectors.salesforce.credentials]
client_id = "{sim.client_id}"
client_secret = {{ env = "PMSYNC_TEST_SF_SECRET" }}
"""
    )
    return str(path)


def test_crm_rates_are_synced_and_win_over_configured_ones(
    sim: SalesforceSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMSYNC_TEST_SF_SECRET", sim.client_secret)
    install_schema(sim)
    # Corporate currency USD: 1 USD buys 0.8 EUR, so 1 EUR is worth 1.25 USD.
    install_currencies(sim, "USD", {"EUR": 0.8, "JPY": 150.0})
    runtime = Runtime.load(
        config(tmp_path, sim, 'reporting = "USD"\nrates = { EUR = 2.0, GBP = 1.3 }')
    )
    try:
        results = {r.stream: r for r in runtime.run_once()}
        assert results["CurrencyType"].status == "ok"
        assert results["CurrencyType"].inserted == 3
        currencies = runtime.derive().currencies
        assert currencies.convert(100.0, "EUR") == pytest.approx(125.0)  # the CRM's, not 2.0
        assert currencies.convert(150.0, "JPY") == pytest.approx(1.0)
        assert currencies.convert(100.0, "GBP") == pytest.approx(130.0)  # only configured
    finally:
        runtime.close()


def test_the_reporting_currency_need_not_be_the_corporate_one(
    sim: SalesforceSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMSYNC_TEST_SF_SECRET", sim.client_secret)
    install_schema(sim)
    install_currencies(sim, "USD", {"EUR": 0.8, "GBP": 0.75})
    runtime = Runtime.load(config(tmp_path, sim, 'reporting = "EUR"'))
    try:
        runtime.run_once()
        currencies = runtime.derive().currencies
        assert currencies.convert(100.0, "USD") == pytest.approx(80.0)
        assert currencies.convert(75.0, "GBP") == pytest.approx(80.0)  # 75 GBP = 100 USD
    finally:
        runtime.close()


def test_a_single_currency_org_reads_no_currency_type_and_fails_nothing(
    sim: SalesforceSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMSYNC_TEST_SF_SECRET", sim.client_secret)
    install_schema(sim)  # no CurrencyType: one currency
    runtime = Runtime.load(config(tmp_path, sim, 'reporting = "USD"\nrates = { EUR = 1.1 }'))
    try:
        first = {r.stream: r for r in runtime.run_once(sweep=True)}
        assert first["CurrencyType"].status == "ok"
        assert first["CurrencyType"].records_read == 0
        sim.reset_log()
        again = {r.stream: r for r in runtime.run_once()}
        assert again["CurrencyType"].status == "ok"
        assert not [r for r in sim.requests if "CurrencyType" in r.path + str(r.query)]
        assert runtime.derive().currencies.convert(10.0, "EUR") == pytest.approx(11.0)
    finally:
        runtime.close()
