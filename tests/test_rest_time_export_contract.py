"""The shared connector contract, run against the `rest` connector configured with the worked
time-based export (mappings/examples/zendesk_organizations.toml) and the Zendesk simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel

from pmsync.app.config import load_config
from pmsync.connectors.base import Connector, StreamSpec
from pmsync.connectors.rest import RestConnector
from pmsync.connectors.rest.cursor import RestCursor
from pmsync.connectors.rest.settings import RestSettings
from pmsync.simulators.zendesk import ZendeskSimulator, generate
from pmsync.simulators.zendesk.app import iso_timestamp
from pmsync.testing.contract import ConnectorContract
from tests.rest_zendesk_example import TOKEN_ENV, example_config


class TestTimeExportContract(ConnectorContract):
    streams: ClassVar = ("organizations",)

    @pytest.fixture(autouse=True)
    def _sim(
        self, zendesk_sim: ZendeskSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        generate(zendesk_sim, organizations=45, users=20, tickets=30, seed=12)
        for org_id in sorted(zendesk_sim.organizations)[-2:]:
            zendesk_sim.delete_organization(org_id)
        monkeypatch.setenv(TOKEN_ENV, zendesk_sim.token)
        self.sim = zendesk_sim
        self.directory = tmp_path

    def _connector(self) -> RestConnector:
        settings = load_config(example_config(self.directory, self.sim, per_page=10))
        rest = settings.connectors["zendesk_orgs"]
        assert isinstance(rest, RestSettings)
        return RestConnector("zendesk_orgs", rest)

    @pytest.fixture
    def connector(self) -> Iterator[Connector]:
        connector = self._connector()
        yield connector
        connector.close()

    @pytest.fixture
    def bad_connector(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Connector]:
        monkeypatch.setenv(TOKEN_ENV, "not-the-token")
        connector = self._connector()
        yield connector
        connector.close()

    def source_keys(self, stream: str) -> set[str]:
        return {str(i) for i, o in self.sim.organizations.items() if not o.get("deleted_at")}

    def change_one(self, stream: str) -> str:
        org_id = sorted(self.sim.organizations)[3]
        self.sim.put_organization({**self.sim.organizations[org_id], "name": "Changed Inc."})
        return str(org_id)

    def delete_one(self, stream: str) -> str:
        org_id = min(int(k) for k in self.source_keys(stream))
        self.sim.delete_organization(org_id)
        return str(org_id)

    def future_cursor(self, spec: StreamSpec) -> BaseModel:
        # Zendesk refuses a start_time in the last minute or later (400), as documented, so
        # "the future" is a time after every record that the API still accepts.
        return RestCursor(since=iso_timestamp(self.sim.now() - 90))
