"""The simulators' inspection methods show a record as the API serves it, as a copy."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from pmsync.connectors.jira import RemoteLink
from pmsync.connectors.jira.connector import JiraConnector
from pmsync.simulators.jira import JiraSimulator
from pmsync.simulators.zendesk import ZendeskSimulator


def test_zendesk_records_are_what_the_api_serves_and_copies(
    small_zendesk: ZendeskSimulator,
) -> None:
    sim = small_zendesk
    ticket_id = next(i for i, t in sim.tickets.items.items() if t["status"] != "deleted")
    served = requests.get(
        f"{sim.base_url}/api/v2/tickets/{ticket_id}.json",
        auth=(f"{sim.email}/token", sim.token),
        timeout=10,
    ).json()["ticket"]
    record = sim.ticket_record(ticket_id)
    assert record == served
    record["subject"] = "changed here only"
    record["custom_fields"].append({"id": 1, "value": "x"})
    assert sim.ticket_record(ticket_id) == served

    user_id = next(iter(sim.users.items))
    assert not any(k.startswith("_") for k in sim.user_record(user_id))
    org_id = next(iter(sim.organizations))
    assert sim.organization_record(org_id)["id"] == org_id
    assert not any(k.startswith("_") for k in sim.organization_record(org_id))

    sim.delete_ticket(ticket_id)
    assert sim.ticket_record(ticket_id)["status"] == "deleted"
    sim.purge_user(user_id)
    with pytest.raises(KeyError):
        sim.user_record(user_id)
    with pytest.raises(KeyError):
        sim.ticket_record(10**9)


def test_jira_records_are_what_the_api_serves_and_copies(
    jira_sim: JiraSimulator, jira_connector: JiraConnector
) -> None:
    sim = jira_sim
    key = sorted(s.current["key"] for s in sim.issues.values())[0]
    credentials: dict[str, Any] = (
        {"headers": {"Authorization": f"Bearer {sim.pat}"}}
        if sim.deployment == "datacenter"
        else {"auth": (sim.email, sim.api_token)}
    )
    served = requests.get(f"{sim.base_url}/rest/api/2/issue/{key}", timeout=10, **credentials)
    served.raise_for_status()
    record = sim.issue_record(key)
    assert record == served.json()
    record["fields"]["summary"] = "changed here only"
    assert sim.issue_record(key) == served.json()

    assert sim.issue_properties(key) == {}
    assert sim.issue_remote_links(key) == []
    assert jira_connector.set_issue_property(key, "pmsync.test", {"n": 1}).ok
    link = RemoteLink("system=test&id=1", "https://example.com/1", "One")
    assert jira_connector.upsert_remote_link(key, link).ok
    properties = sim.issue_properties(key)
    assert properties == {"pmsync.test": {"n": 1}}
    properties["pmsync.test"]["n"] = 2
    assert sim.issue_properties(key) == {"pmsync.test": {"n": 1}}
    [stored_link] = sim.issue_remote_links(key)
    assert stored_link["object"]["title"] == "One"

    sim.hide_issue(key)
    for inspect in (sim.issue_record, sim.issue_properties, sim.issue_remote_links):
        with pytest.raises(KeyError):
            inspect(key)
