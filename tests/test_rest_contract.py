"""The shared connector contract, run against the `rest` connector configured with the shipped
PostHog example (config.example.toml) and the PostHog simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel

from pmsync.app.config import load_config
from pmsync.connectors.base import Connector, StreamSpec
from pmsync.connectors.rest import RestConnector
from pmsync.connectors.rest.cursor import RestCursor
from pmsync.connectors.rest.settings import RestSettings
from pmsync.simulators.posthog import PostHogSimulator, generate
from pmsync.testing.contract import ConnectorContract
from tests.rest_example import TOKEN_ENV, example_config

NOW = 1_790_000_000 // 86_400 * 86_400 + 43_200  # a fixed midday, shared with the simulator


def example_connector(tmp_path: Path, sim: PostHogSimulator, name: str = "posthog") -> Connector:
    config = load_config(example_config(tmp_path, sim, initial_value="2000-01-01", limit=6))
    settings = config.connectors["posthog"]
    assert isinstance(settings, RestSettings)
    return RestConnector(name, settings)


class TestRestContract(ConnectorContract):
    streams: ClassVar = ("usage",)

    @pytest.fixture(autouse=True)
    def _sim(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
        sim = PostHogSimulator(clock=lambda: NOW)
        sim.start()
        generate(sim, accounts=5, days=8, seed=4)
        monkeypatch.setenv(TOKEN_ENV, sim.api_key)
        self.sim = sim
        self.directory = tmp_path
        self.yesterday = sim.today() - timedelta(days=1)
        yield
        sim.stop()

    @pytest.fixture
    def connector(self) -> Iterator[Connector]:
        connector = example_connector(self.directory, self.sim)
        yield connector
        connector.close()

    @pytest.fixture
    def bad_connector(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Connector]:
        monkeypatch.setenv(TOKEN_ENV, "phx_not_the_key")
        connector = example_connector(self.directory, self.sim)
        yield connector
        connector.close()

    def source_keys(self, stream: str) -> set[str]:
        usage = self.sim.daily_usage(date(2000, 1, 1), self.yesterday)
        return {f"{account}:{day}" for account, day in usage}

    def change_one(self, stream: str) -> str:
        account = "001SIM000000000003"
        at = datetime.combine(self.yesterday, datetime.min.time(), UTC) + timedelta(hours=20)
        self.sim.capture("export_csv", "late-person", at, {"account_id": account})  # late data
        return f"{account}:{self.yesterday.isoformat()}"

    def delete_one(self, stream: str) -> str:
        first = sorted(self.source_keys(stream))[0]
        self.sim.delete_account(first.split(":")[0])
        return first

    def future_cursor(self, spec: StreamSpec) -> BaseModel:
        return RestCursor(since="2100-01-01")
