"""The shared connector contract, run against the Zendesk connector and simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, SecretStr

from pmsync.connectors.base import Connector, StreamSpec
from pmsync.connectors.zendesk import ZendeskConnector
from pmsync.connectors.zendesk.connector import ExportCursor, SinceIdCursor, TimeCursor
from pmsync.connectors.zendesk.settings import ZendeskCredentials, ZendeskSettings
from pmsync.simulators.zendesk import ZendeskSimulator, generate
from pmsync.testing.contract import ConnectorContract

FAR_FUTURE = 4_102_444_800  # 2100-01-01


def make_connector(sim: ZendeskSimulator, token: str, page_size: int = 40) -> ZendeskConnector:
    settings = ZendeskSettings(
        base_url=sim.base_url,
        page_size=page_size,
        incremental_requests_per_minute=100_000,
        requests_per_minute=100_000,
        credentials=ZendeskCredentials(email=sim.email, api_token=SecretStr(token)),
    )
    return ZendeskConnector("zendesk", settings)


class TestZendeskContract(ConnectorContract):
    streams: ClassVar = ("tickets", "users", "organizations", "jira_links")
    objects_with_custom_fields: ClassVar = ("tickets", "users", "organizations")

    @pytest.fixture(autouse=True)
    def _sim(self, zendesk_sim: ZendeskSimulator) -> None:
        keys = [(str(10_000 + n), f"PROJ-{n}") for n in range(1, 30)]
        generate(
            zendesk_sim,
            organizations=90,
            users=120,
            tickets=200,
            seed=3,
            jira_keys=keys,
            link_share=0.6,
        )
        zendesk_sim.links_page_size = 25
        self.sim = zendesk_sim

    @pytest.fixture
    def connector(self) -> Iterator[Connector]:
        connector = make_connector(self.sim, self.sim.token)
        yield connector
        connector.close()

    @pytest.fixture
    def bad_connector(self) -> Iterator[Connector]:
        connector = make_connector(self.sim, "not-the-token")
        yield connector
        connector.close()

    def source_keys(self, stream: str) -> set[str]:
        sim = self.sim
        if stream == "tickets":
            return {str(i) for i, t in sim.tickets.items.items() if t.get("status") != "deleted"}
        if stream == "users":
            return {str(i) for i, u in sim.users.items.items() if u.get("active") is not False}
        if stream == "organizations":
            return {str(i) for i, o in sim.organizations.items() if not o.get("deleted_at")}
        return {link["id"] for link in sim.jira_links.values()}

    def change_one(self, stream: str) -> str:
        sim = self.sim
        if stream == "tickets":
            ticket = sim.ticket_record(5)
            sim.put_ticket({**ticket, "subject": "changed"})
            return "5"
        if stream == "users":
            user = sim.user_record(next(iter(sim.users.items)))
            sim.put_user({**user, "name": "Changed Name"})
            return str(user["id"])
        if stream == "organizations":
            org = sim.organization_record(next(iter(sim.organizations)))
            sim.put_organization({**org, "notes": "changed"})
            return str(org["id"])
        return str(sim.add_jira_link(7, "10099", "PROJ-99")["id"])

    def delete_one(self, stream: str) -> str:
        sim = self.sim
        if stream == "tickets":
            victim = next(i for i, t in sim.tickets.items.items() if t.get("status") != "deleted")
            sim.delete_ticket(victim)
            return str(victim)
        if stream == "users":
            victim = next(iter(sim.users.items))
            sim.purge_user(victim)  # hard delete: only /deleted_users tells
            return str(victim)
        if stream == "organizations":
            victim = next(iter(sim.organizations))
            sim.purge_organization(victim)  # hard delete: only the census tells
            return str(victim)
        victim_link = next(iter(sim.jira_links))
        sim.remove_jira_link(victim_link)
        return str(victim_link)

    def future_cursor(self, spec: StreamSpec) -> BaseModel:
        if spec.name in ("tickets", "users"):
            return ExportCursor(start_time=FAR_FUTURE)
        if spec.name == "organizations":
            return TimeCursor(start_time=FAR_FUTURE)
        return SinceIdCursor(since_id=10**12)

    def key_of(self, spec: StreamSpec, record: dict[str, Any]) -> str:
        return str(record["id"])
