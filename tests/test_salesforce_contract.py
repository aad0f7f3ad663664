"""The shared connector contract, run against the Salesforce connector and simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from pydantic import BaseModel

from pmsync.connectors.base import Connector, StreamSpec
from pmsync.connectors.salesforce.cursor import SObjectCursor
from pmsync.simulators.salesforce import SalesforceSimulator, generate
from pmsync.testing.contract import ConnectorContract
from tests.salesforce_support import make_connector, running

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


class TestSalesforceContract(ConnectorContract):
    streams: ClassVar = ("Account", "Contact")
    objects_with_custom_fields: ClassVar = ("Account", "Contact")

    @pytest.fixture(autouse=True)
    def _sim(self) -> Iterator[None]:
        sim = SalesforceSimulator()
        for started in running(sim):
            generate(sim, accounts=450, contacts=420, seed=5)
            self.sim = started
            yield

    @pytest.fixture
    def connector(self) -> Iterator[Connector]:
        connector = make_connector(self.sim)
        yield connector
        connector.close()

    @pytest.fixture
    def bad_connector(self) -> Iterator[Connector]:
        connector = make_connector(self.sim, secret="not-the-secret")
        yield connector
        connector.close()

    def source_keys(self, stream: str) -> set[str]:
        return self.sim.live_ids(stream)

    def change_one(self, stream: str) -> str:
        ident = sorted(self.sim.live_ids(stream))[7]
        self.sim.update(stream, ident, {"Title" if stream == "Contact" else "Name": "changed"})
        return ident

    def delete_one(self, stream: str) -> str:
        ident = sorted(self.sim.live_ids(stream))[3]
        if stream == "Account":
            self.sim.soft_delete(stream, ident)  # Recycle Bin: queryAll reports IsDeleted
        else:
            self.sim.hard_delete(stream, ident)  # gone for good: only the census finds it
        return ident

    def future_cursor(self, spec: StreamSpec) -> BaseModel:
        return SObjectCursor(
            systemmodstamp=FAR_FUTURE, id="zzz", since=FAR_FUTURE, refreshed_at=FAR_FUTURE
        )
