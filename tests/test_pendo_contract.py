"""The shared connector contract, run against the Pendo connector and simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import ClassVar

import pytest
from pydantic import BaseModel, SecretStr

from pmsync.connectors.base import Connector, StreamSpec
from pmsync.connectors.pendo import PendoConnector
from pmsync.connectors.pendo.connector import AccountsCursor, UsageCursor
from pmsync.connectors.pendo.settings import PendoSettings
from pmsync.simulators.pendo import PendoSimulator, generate
from pmsync.testing.contract import ConnectorContract

# A fixed moment (midday UTC) shared by simulator and connector: no test straddles midnight.
NOW = 1_790_000_000 // 86_400 * 86_400 + 43_200
FAR_FUTURE_MS = 4_102_444_800_000


def make_connector(sim: PendoSimulator, key: str, start: date) -> PendoConnector:
    settings = PendoSettings(
        base_url=sim.base_url,
        integration_key=SecretStr(key),
        start_date=start,
        reread_days=2,
        reread_interval=timedelta(0),  # the clock stands still: re-read every cycle
        page_size=5,
        requests_per_minute=100_000,
    )
    connector = PendoConnector("pendo", settings)
    connector.clock = lambda: NOW
    return connector


class TestPendoContract(ConnectorContract):
    streams: ClassVar = ("accounts", "usage")
    objects_with_custom_fields: ClassVar = ("accounts", "usage")

    @pytest.fixture(autouse=True)
    def _sim(self) -> Iterator[None]:
        sim = PendoSimulator(clock=lambda: NOW)
        sim.start()
        generate(sim, accounts=12, days=12, seed=9)
        self.sim = sim
        self.yesterday = sim.today() - timedelta(days=1)
        self.start = self.yesterday - timedelta(days=8)
        yield
        sim.stop()

    @pytest.fixture
    def connector(self) -> Iterator[Connector]:
        connector = make_connector(self.sim, self.sim.integration_key, self.start)
        yield connector
        connector.close()

    @pytest.fixture
    def bad_connector(self) -> Iterator[Connector]:
        connector = make_connector(self.sim, "not-the-key", self.start)
        yield connector
        connector.close()

    def source_keys(self, stream: str) -> set[str]:
        if stream == "accounts":
            return set(self.sim.accounts)
        truth = self.sim.usage_truth(self.start, self.yesterday)
        return {f"{account}:{day}" for account, day in truth}

    def change_one(self, stream: str) -> str:
        account = sorted(self.sim.accounts)[3]
        if stream == "accounts":
            self.sim.put_account(account, name="Renamed Inc.")
            return account
        self.sim.add_events(account, "late-visitor", self.yesterday, 7, 3)  # late data
        return f"{account}:{self.yesterday.isoformat()}"

    def delete_one(self, stream: str) -> str:
        truth = self.sim.usage_truth(self.start, self.yesterday)
        account = sorted({a for a, _day in truth})[0]
        if stream == "accounts":
            self.sim.delete_account(account)
            return account
        day = min(d for a, d in truth if a == account)
        self.sim.delete_account(account)  # its usage goes with it; only the census tells
        return f"{account}:{day}"

    def future_cursor(self, spec: StreamSpec) -> BaseModel:
        if spec.name == "accounts":
            return AccountsCursor(lastupdated=FAR_FUTURE_MS)
        return UsageCursor(last_day=date(2100, 1, 1))
