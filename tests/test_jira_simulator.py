"""The Jira simulator honours the documented contract, checked through the jira library."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from jira import JIRA
from jira.exceptions import JIRAError

from pmsync.simulators.clock import FakeClock
from pmsync.simulators.jira import JiraSimulator, generate
from tests.jira_support import start_sim


@pytest.fixture
def cloud(clock: FakeClock) -> Iterator[JiraSimulator]:
    sim = start_sim("cloud", clock)
    yield sim
    sim.stop()


@pytest.fixture
def datacenter(clock: FakeClock) -> Iterator[JiraSimulator]:
    sim = start_sim("datacenter", clock)
    yield sim
    sim.stop()


def cloud_client(sim: JiraSimulator) -> JIRA:
    return JIRA(server=sim.base_url, basic_auth=(sim.email, sim.api_token), max_retries=0)


def dc_client(sim: JiraSimulator) -> JIRA:
    return JIRA(server=sim.base_url, token_auth=sim.pat, max_retries=0)


def _at(hour: int, minute: int) -> float:
    return datetime(2026, 1, 15, hour, minute, tzinfo=UTC).timestamp()


def test_cloud_legacy_search_is_gone(cloud: JiraSimulator) -> None:
    client = cloud_client(cloud)
    assert client.deploymentType == "Cloud"
    with pytest.raises(JIRAError) as info:
        client._get_json("search", params={"jql": "project = CORE"})
    assert info.value.status_code == 410
    assert "/rest/api/3/search/jql" in str(info.value.text)


def test_cloud_search_pages_by_token_without_total(cloud: JiraSimulator) -> None:
    generate(cloud, issues=130, seed=1)
    client = cloud_client(cloud)
    jql = 'project in ("CORE", "MOBILE", "DATA") ORDER BY key ASC'
    seen: list[str] = []
    token = None
    for _page in range(10):
        body = client.enhanced_search_issues(
            jql, nextPageToken=token, maxResults=500, fields=["summary"], json_result=True
        )
        assert "total" not in body
        assert len(body["issues"]) <= 100  # capped when fields are asked for
        seen += [i["key"] for i in body["issues"]]
        token = body.get("nextPageToken")
        if body["isLast"]:
            assert token is None
            break
    assert len(seen) == len(set(seen)) == 130
    ids_only = client.enhanced_search_issues(jql, maxResults=5000, fields=["id"], json_result=True)
    assert len(ids_only["issues"]) == 130
    assert ids_only["issues"][0]["fields"] == {}


def test_cloud_refuses_unbounded_queries_and_foreign_tokens(cloud: JiraSimulator) -> None:
    generate(cloud, issues=120, seed=1)
    client = cloud_client(cloud)
    with pytest.raises(JIRAError) as info:
        client.enhanced_search_issues("ORDER BY key ASC", json_result=True)
    assert info.value.status_code == 400
    assert "Unbounded" in str(info.value.text)
    body = client.enhanced_search_issues("project = CORE", maxResults=10, json_result=True)
    with pytest.raises(JIRAError) as info:
        client.enhanced_search_issues(
            "project = DATA", nextPageToken=body["nextPageToken"], json_result=True
        )
    assert info.value.status_code == 400


def test_datacenter_search_has_offsets_and_total(datacenter: JiraSimulator) -> None:
    generate(datacenter, issues=70, seed=1)
    client = dc_client(datacenter)
    assert client.deploymentType == "Server"
    body = client.search_issues(
        "project in (CORE, MOBILE, DATA) ORDER BY key", startAt=60, maxResults=50, json_result=True
    )
    assert body["total"] == 70
    assert body["startAt"] == 60
    assert len(body["issues"]) == 10
    with pytest.raises(JIRAError) as info:
        client._get_json("search/jql", params={"jql": "project = CORE"})
    assert info.value.status_code == 404


@pytest.mark.parametrize(
    ("zone", "literal"),
    [("America/Los_Angeles", "2026/01/15 10:00"), ("Asia/Kolkata", "2026-01-15 23:30")],
)
def test_literal_dates_are_read_in_the_users_zone_epoch_ms_is_exact(
    clock: FakeClock, zone: str, literal: str
) -> None:
    sim = start_sim("cloud", clock, time_zone=zone)
    try:
        sim.add_project("CORE", "Core")
        early = sim.create_issue("CORE", {"summary": "a"}, at=_at(17, 59))
        late = sim.create_issue("CORE", {"summary": "b"}, at=_at(18, 0) + 0.5)
        client = cloud_client(sim)

        def keys(jql: str) -> list[str]:
            body = client.enhanced_search_issues(jql, fields=["updated"], json_result=True)
            return [i["key"] for i in body["issues"]]

        assert keys(f'project = CORE AND updated >= "{literal}"') == [late["key"]]
        assert keys(f"project = CORE AND updated >= {int(_at(18, 0) * 1000)}") == [late["key"]]
        assert keys(f"project = CORE AND updated >= {int(_at(18, 0) * 1000) + 501}") == []
        with pytest.raises(JIRAError) as info:
            keys('project = CORE AND updated >= "2026/01/15 10:00:30"')
        assert "yyyy/MM/dd HH:mm" in str(info.value.text)
        rendered = client.issue(early["key"]).fields.updated
        offset = "-0800" if zone == "America/Los_Angeles" else "+0530"
        assert rendered.endswith(offset)
    finally:
        sim.stop()


def test_put_issue_rejects_unknown_fields_with_jiras_body(cloud: JiraSimulator) -> None:
    generate(cloud, issues=3, seed=1)
    key = next(iter(cloud.by_key))
    answer = requests.put(
        f"{cloud.base_url}/rest/api/2/issue/{key}",
        json={"fields": {"customfield_99999": 1, "summary": "ok"}},
        auth=(cloud.email, cloud.api_token),
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "errorMessages": [],
        "errors": {
            "customfield_99999": "Field 'customfield_99999' cannot be set. It is not on the "
            "appropriate screen, or unknown."
        },
    }
    assert cloud_client(cloud).issue(key).fields.summary != "ok"  # nothing applied


def test_library_issue_update_round_trip(cloud: JiraSimulator) -> None:
    generate(cloud, issues=3, seed=1)
    client = cloud_client(cloud)
    issue = client.issue(next(iter(cloud.by_key)))
    issue.update(fields={"summary": "Renamed"}, notify=False)
    assert issue.fields.summary == "Renamed"
    assert [r.method for r in cloud.requests[-2:]] == ["PUT", "GET"]


def test_wrong_credentials_answer_401_but_server_info_is_public(cloud: JiraSimulator) -> None:
    base = cloud.base_url
    assert requests.get(f"{base}/rest/api/2/serverInfo", timeout=5).status_code == 200
    assert requests.get(f"{base}/rest/api/2/myself", timeout=5).status_code == 401
    wrong = requests.get(f"{base}/rest/api/2/serverInfo", auth=("x", "y"), timeout=5)
    assert wrong.status_code == 401
    assert wrong.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
