"""The shared connector contract, run against the Jira connector in Cloud and Data Center modes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from pmsync.connectors.base import Connector, StreamSpec
from pmsync.connectors.jira import IssueCursor
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.jira import Deployment, JiraSimulator, generate
from pmsync.testing.contract import ConnectorContract
from tests.jira_support import make_connector, start_sim

FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01


class _JiraContract(ConnectorContract):
    deployment: ClassVar[Deployment] = "cloud"
    streams: ClassVar = ("issues",)
    objects_with_custom_fields: ClassVar = ("issues",)

    @pytest.fixture(autouse=True)
    def _sim(self, clock: FakeClock) -> Iterator[None]:
        self.clock = clock
        self.sim: JiraSimulator = start_sim(self.deployment, self.clock, time_zone="Asia/Kolkata")
        generate(self.sim, issues=150, seed=5)
        yield
        self.sim.stop()

    @pytest.fixture
    def connector(self) -> Iterator[Connector]:
        connector = make_connector(self.sim, self.clock)
        yield connector
        connector.close()

    @pytest.fixture
    def bad_connector(self) -> Iterator[Connector]:
        connector = make_connector(self.sim, self.clock, secret="not-the-secret")
        yield connector
        connector.close()

    def source_keys(self, stream: str) -> set[str]:
        return self.sim.visible_ids()

    def change_one(self, stream: str) -> str:
        victim = sorted(self.sim.visible_ids())[3]
        self.sim.update_issue(victim, {"summary": "changed"})
        self.clock.advance(180)  # let the change's minute settle
        return victim

    def delete_one(self, stream: str) -> str:
        victim = sorted(self.sim.visible_ids())[0]
        self.sim.delete_issue(victim)
        return victim

    def future_cursor(self, spec: StreamSpec) -> BaseModel:
        return IssueCursor(settled_ms=FAR_FUTURE_MS)

    def key_of(self, spec: StreamSpec, record: dict[str, Any]) -> str:
        return str(record["id"])


class TestJiraCloudContract(_JiraContract):
    deployment: ClassVar[Deployment] = "cloud"


class TestJiraDataCenterContract(_JiraContract):
    deployment: ClassVar[Deployment] = "datacenter"
