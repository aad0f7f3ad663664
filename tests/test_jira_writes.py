"""Jira write primitives: field edits without notifications, issue properties, remote links."""

from __future__ import annotations

import time

import pytest
from structlog.testing import capture_logs

from pmsync.connectors.base import FieldWrite
from pmsync.connectors.budget import waiting_with
from pmsync.connectors.jira import JiraConnector, RemoteLink
from pmsync.connectors.jira.writes import IssueWritePacer
from pmsync.errors import AuthError
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.jira import JiraSimulator, generate
from pmsync.simulators.jira.fields import CUSTOMER_ARR, CUSTOMER_REQUESTS, LEGACY_ESTIMATE
from tests.jira_support import make_connector, start_sim


def _keys(sim: JiraSimulator, n: int) -> list[str]:
    return sorted(s.current["key"] for s in sim.issues.values())[:n]


def _fields(sim: JiraSimulator, key: str) -> dict[str, object]:
    return dict(sim.issue_record(key)["fields"])


def test_bad_fields_fail_their_record_only_naming_issue_and_field(
    jira_connector: JiraConnector, jira_sim: JiraSimulator
) -> None:
    good, unknown, locked, mixed = _keys(jira_sim, 4)
    outcomes = jira_connector.write(
        [
            FieldWrite("issues", good, {"Customer ARR": 1_240_000, CUSTOMER_REQUESTS: 37}),
            FieldWrite("issues", unknown, {"Custmer ARR": 5}),
            FieldWrite("issues", locked, {"Legacy estimate": 8}),
            FieldWrite("issues", mixed, {"Customer ARR": 99, LEGACY_ESTIMATE: 1}),
        ]
    )
    assert [o.key for o in outcomes] == [good, unknown, locked, mixed]
    assert outcomes[0].ok
    assert outcomes[0].error is None
    assert _fields(jira_sim, good)[CUSTOMER_ARR] == 1_240_000
    assert _fields(jira_sim, good)[CUSTOMER_REQUESTS] == 37

    assert not outcomes[1].ok
    assert f"issue {unknown}" in str(outcomes[1].error)
    assert "'Custmer ARR'" in str(outcomes[1].error)
    assert "'Customer ARR' (customfield_10100, number)" in str(outcomes[1].error)

    assert not outcomes[2].ok
    assert not outcomes[2].retriable
    assert f"issue {locked}: field 'Legacy estimate' ({LEGACY_ESTIMATE}" in str(outcomes[2].error)
    assert "not on the appropriate screen" in str(outcomes[2].error)
    assert _fields(jira_sim, locked).get(LEGACY_ESTIMATE) is None

    assert not outcomes[3].ok  # one field rejected: the other one is still written
    assert LEGACY_ESTIMATE in str(outcomes[3].error)
    assert "other fields were written" in str(outcomes[3].error)
    assert _fields(jira_sim, mixed)[CUSTOMER_ARR] == 99


def test_wrong_value_type_is_reported_with_jiras_reason(
    jira_connector: JiraConnector, jira_sim: JiraSimulator
) -> None:
    (key,) = _keys(jira_sim, 1)
    (outcome,) = jira_connector.write([FieldWrite("issues", key, {CUSTOMER_ARR: "a lot"})])
    assert not outcome.ok
    assert "Operation value must be a number" in str(outcome.error)


def test_missing_issue_and_denied_project_are_record_failures(
    jira_connector: JiraConnector, jira_sim: JiraSimulator
) -> None:
    key = _keys(jira_sim, 1)[0]
    jira_sim.edit_denied_projects.add(key.partition("-")[0])
    outcomes = jira_connector.write(
        [
            FieldWrite("issues", "NOPE-1", {CUSTOMER_ARR: 1}),
            FieldWrite("issues", key, {CUSTOMER_ARR: 1}),
        ]
    )
    assert "NOPE-1 does not exist" in str(outcomes[0].error)
    assert f"issue {key}: the API user may not edit it" in str(outcomes[1].error)
    assert not any(o.ok for o in outcomes)


def test_edits_do_not_notify_watchers_when_the_user_may_suppress_it(
    jira_connector: JiraConnector, jira_sim: JiraSimulator
) -> None:
    keys = _keys(jira_sim, 3)
    with capture_logs() as logs:
        outcomes = jira_connector.write([FieldWrite("issues", k, {CUSTOMER_ARR: 1}) for k in keys])
    assert all(o.ok for o in outcomes)
    assert jira_sim.notifications == []
    puts = [r for r in jira_sim.requests if r.method == "PUT"]
    assert len(puts) == 3
    assert all(r.query.get("notifyUsers") == "false" for r in puts)
    assert not [e for e in logs if e["event"] == "jira_notify_users_ignored"]


def test_ignored_notify_flag_is_said_once_per_project(
    jira_connector: JiraConnector, jira_sim: JiraSimulator
) -> None:
    jira_sim.user_is_admin = False
    same_project = [k for k in _keys(jira_sim, 30) if k.startswith("CORE-")][:3]
    with capture_logs() as logs:
        outcomes = jira_connector.write(
            [FieldWrite("issues", k, {CUSTOMER_ARR: 2}) for k in same_project]
        )
    assert all(o.ok for o in outcomes)
    warnings = [e for e in logs if e["event"] == "jira_notify_users_ignored"]
    assert len(warnings) == 1
    assert warnings[0]["project"] == "CORE"
    assert jira_sim.notifications == same_project  # Jira ignored the flag, as documented


def test_issue_property_stores_a_json_document(
    jira_connector: JiraConnector, jira_sim: JiraSimulator
) -> None:
    key = _keys(jira_sim, 1)[0]
    updated = _fields(jira_sim, key)["updated"]
    document = {"arr": 1_240_000, "accounts": ["001A", "001B"], "tickets": [1, 2, 3]}
    assert jira_connector.set_issue_property(key, "pmsync.rollup", document).ok
    assert jira_connector.set_issue_property(key, "pmsync.rollup", {**document, "arr": 5}).ok
    assert jira_sim.issue_properties(key)["pmsync.rollup"]["arr"] == 5
    assert _fields(jira_sim, key)["updated"] == updated  # properties do not touch `updated`

    jira_sim.reset_log()
    too_big = jira_connector.set_issue_property(key, "pmsync.rollup", {"blob": "x" * 40_000})
    assert not too_big.ok
    assert "32768" in str(too_big.error)
    assert jira_sim.requests == []  # refused before sending


def test_remote_links_are_upserted_by_global_id(
    jira_connector: JiraConnector, jira_sim: JiraSimulator
) -> None:
    key = _keys(jira_sim, 1)[0]
    acme = RemoteLink(
        global_id="system=sfdc&id=001A",
        url="https://acme.my.salesforce.com/001A",
        title="Acme (ARR 1,000,000 USD)",
        relationship="requested by",
        application={"type": "com.salesforce", "name": "Salesforce"},
    )
    assert jira_connector.upsert_remote_link(key, acme).ok
    renamed = RemoteLink(acme.global_id, acme.url, "Acme (ARR 1,200,000 USD)")
    assert jira_connector.upsert_remote_link(key, renamed).ok
    other = RemoteLink("system=sfdc&id=001B", "https://acme.my.salesforce.com/001B", "Globex")
    assert jira_connector.upsert_remote_link(key, other).ok
    links = jira_sim.issue_remote_links(key)
    assert sorted(link["globalId"] for link in links) == sorted([acme.global_id, other.global_id])
    first = next(link for link in links if link["globalId"] == acme.global_id)
    assert first["object"]["title"] == "Acme (ARR 1,200,000 USD)"
    assert first["relationship"] is None  # left out: reset, as Jira does
    assert not any("applinks" in r.path for r in jira_sim.requests)  # one request per link


def test_per_issue_write_limit_answer_is_a_retriable_outcome(clock: FakeClock) -> None:
    sim = start_sim("cloud", clock, issue_write_limits=((1, 30.0),))
    try:
        generate(sim, issues=5, seed=2)
        connector = make_connector(sim, clock)
        key = _keys(sim, 1)[0]
        first, second = connector.write(
            [
                FieldWrite("issues", key, {CUSTOMER_ARR: 1}),
                FieldWrite("issues", key, {CUSTOMER_ARR: 2}),
            ]
        )
        assert first.ok
        assert not second.ok
        assert second.retriable
        assert "429" in str(second.error)
        assert "retry after" in str(second.error)
    finally:
        sim.stop()


def test_pacer_keeps_writes_to_one_issue_under_the_limit(clock: FakeClock) -> None:
    # Jira counts 2 writes per 0.5 s, the pacer 2 per second: unpaced, the third write would
    # land within milliseconds; paced, it lands a second after the first. The pacer and Jira
    # see each request at slightly different moments, so an identical window would leave no
    # margin for that (under load, a paced write could then reach Jira a hair too early).
    sim = start_sim("cloud", clock, issue_write_limits=((2, 0.5),))
    try:
        generate(sim, issues=5, seed=2)
        connector = make_connector(sim, clock)
        pacer = IssueWritePacer([(2, 1)])
        connector.writer._pacer = pacer
        key = _keys(sim, 1)[0]
        outcomes = connector.write([FieldWrite("issues", key, {CUSTOMER_ARR: n}) for n in range(3)])
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        assert pacer.waited_seconds > 0
        assert not [r for r in sim.requests if r.status == 429]
    finally:
        sim.stop()


def test_a_429_on_a_write_is_a_wait_for_retry_after_then_the_write(clock: FakeClock) -> None:
    # The pacer lets everything through; Jira allows one write per issue a second and answers
    # the second write 429 with Retry-After: the write waits that long and is sent again.
    sim = start_sim("cloud", clock, issue_write_limits=((1, 1.0),))
    try:
        generate(sim, issues=5, seed=2)
        connector = make_connector(sim, clock)
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        connector.writer._pacer = IssueWritePacer([(1000, 1)])
        key = _keys(sim, 1)[0]
        with waiting_with(sleep), capture_logs() as logs:
            outcomes = connector.write(
                [FieldWrite("issues", key, {CUSTOMER_ARR: n}) for n in (1, 2)]
            )
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        puts = [r for r in sim.requests if r.method == "PUT"]
        assert [r.status for r in puts][:2] == [204, 429]
        assert puts[-1].status == 204
        assert waits == [pytest.approx(1.0)]  # Retry-After: 1
        limited = [e["reason"] for e in logs if e["event"] == "jira_write_rate_limited"]
        assert limited == ["jira-per-issue-on-write"]
    finally:
        sim.stop()


def test_refused_credentials_stop_the_write_back(jira_sim: JiraSimulator, clock: FakeClock) -> None:
    connector = make_connector(jira_sim, clock, secret="wrong")
    key = _keys(jira_sim, 1)[0]
    with pytest.raises(AuthError):
        connector.write([FieldWrite("issues", key, {CUSTOMER_ARR: 1})])


def test_refused_notify_flag_is_dropped_once_and_writes_go_on(clock: FakeClock) -> None:
    sim = start_sim("cloud", clock, user_is_admin=False, refuse_notify_flag=True)
    try:
        generate(sim, issues=5, seed=2)
        connector = make_connector(sim, clock)
        keys = _keys(sim, 3)
        with capture_logs() as logs:
            outcomes = connector.write([FieldWrite("issues", k, {CUSTOMER_ARR: 3}) for k in keys])
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        assert all(_fields(sim, k)[CUSTOMER_ARR] == 3 for k in keys)
        assert len([e for e in logs if e["event"] == "jira_notify_users_refused"]) == 1
        puts = [r for r in sim.requests if r.method == "PUT"]
        assert [r.status for r in puts] == [400, 204, 204, 204]
    finally:
        sim.stop()
