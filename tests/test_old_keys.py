"""Old keys of moved Jira issues (issue 18): tickets naming them link to the issue, and
`links review` lists every key that resolves to nothing, with its rule, and no key that does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pmsync.connectors.jira import JiraConnector
from pmsync.simulators.clock import FakeClock
from pmsync.simulators.jira import JiraSimulator
from pmsync.simulators.jira import generate as generate_issues
from pmsync.sync.engine import SyncEngine
from pmsync.sync.links.derive import Derived, derive
from pmsync.sync.links.linker import Overrides
from pmsync.sync.links.models import LinkSettings, TicketIssueLinks
from pmsync.sync.links.report import review_queue
from pmsync.sync.links.settings import CurrencySettings
from pmsync.sync.store import store as st
from pmsync.sync.store.store import RecordRow, Store, content_hash, dumps, utcnow
from tests.conftest import START
from tests.jira_support import default_mapping, make_connector, start_sim

RULES = LinkSettings(
    ticket_issue=TicketIssueLinks(rules=["override", "jira_integration", "ticket_field", "text"])
)
LOOK_ALIKES = "Our ISO-9001 audit needs UTF-8 exports, COVID-19 rules, SHA-256 and TLS-1.2."


@pytest.fixture
def world(store_url: str) -> Iterator[tuple[Store, JiraSimulator, JiraConnector, dict[str, Any]]]:
    clock = FakeClock(START)
    sim = start_sim("cloud", clock)
    store = Store(store_url)
    try:
        issues = generate_issues(sim, issues=30, seed=3)
        connector = make_connector(sim, clock)
        engine = SyncEngine(store, run_id="test", sleep=lambda _s: None)
        spec, mapping = connector.stream("issues"), default_mapping()
        engine.sync_stream(connector, spec, mapping)
        mover = next(i for i in issues if i["key"].startswith("MOBILE-"))
        old_key = mover["key"]
        new_key = sim.move_issue(mover["id"], "DATA")
        clock.advance(600)  # the move's minute has settled
        engine.sync_stream(connector, spec, mapping)
        keys = {"old": old_key, "new": new_key, "id": mover["id"]}
        yield store, sim, connector, keys
    finally:
        store.close()
        sim.stop()


def put_tickets(store: Store, tickets: list[dict[str, Any]]) -> None:
    rows = []
    for fields in tickets:
        raw = unified = dumps(fields)
        rows.append(RecordRow(str(fields["id"]), "feedback", raw, unified, content_hash(raw, raw)))
    with store.transaction() as connection:
        st.write_records(connection, "zendesk", "tickets", rows, utcnow())


def derive_with(store: Store, connector: JiraConnector) -> Derived:
    return derive(
        store,
        RULES,
        Overrides(),
        {},
        CurrencySettings(),
        lookups={"jira": connector.lookup_issue_keys},
        projects=["CORE", "MOBILE", "DATA"],
    )


def test_old_keys_in_the_field_and_in_the_text_link_to_the_moved_issue(
    world: tuple[Store, JiraSimulator, JiraConnector, dict[str, Any]],
) -> None:
    store, sim, connector, keys = world
    put_tickets(
        store,
        [
            {"id": "1", "issue_keys": [keys["old"].lower()], "subject": "bulk API"},
            {"id": "2", "subject": f"Need bulk API [{keys['old']}]", "description": ""},
            {"id": "3", "subject": "compliance", "description": LOOK_ALIKES},
        ],
    )
    sim.reset_log()

    derived = derive_with(store, connector)

    issue_ref = f"jira:{keys['id']}"
    assert {r: link.rule for r, link in derived.links.issues_of["zendesk:1"].items()} == {
        issue_ref: "ticket_field"
    }
    assert {r: link.rule for r, link in derived.links.issues_of["zendesk:2"].items()} == {
        issue_ref: "text"
    }
    assert "zendesk:3" not in derived.links.issues_of  # look-alikes are not issues
    assert derived.rollups["customer_demand"][issue_ref].tickets == 2
    assert derived.rollups["customer_demand"][issue_ref].issue_key == keys["new"]
    lookups = [r.path for r in sim.requests if "/issue/" in r.path]
    assert lookups == [f"/rest/api/2/issue/{keys['old']}"]  # looked up once; no look-alike
    assert not [u for u in derived.links.unresolved if u.kind == "ticket_issue"]

    sim.reset_log()
    again = derive_with(store, connector)
    assert issue_ref in again.links.issues_of["zendesk:2"]
    assert not [r for r in sim.requests if "/issue/" in r.path]  # remembered in the store


def test_links_review_lists_unresolved_keys_with_their_rule_and_never_a_resolving_one(
    world: tuple[Store, JiraSimulator, JiraConnector, dict[str, Any]],
) -> None:
    store, _sim, connector, keys = world
    put_tickets(
        store,
        [
            {"id": "7", "issue_keys": [keys["old"], "CORE-9999"], "subject": "two keys"},
            {"id": "8", "subject": f"see {keys['old']} and DATA-9998", "description": ""},
            {"id": "9", "subject": "compliance", "description": LOOK_ALIKES},
        ],
    )
    derived = derive_with(store, connector)
    review = [row for row in review_queue(derived).as_dicts() if row["kind"] == "ticket_issue"]
    assert sorted((r["ticket"], r["rule"], r["detail"]) for r in review) == [
        ("zendesk:7", "ticket_field", "ticket_field refers to issues not in the store: CORE-9999"),
        ("zendesk:8", "text", "text refers to issues not in the store: DATA-9998"),
    ]
    text = " ".join(str(r["detail"]) for r in review)
    assert keys["old"] not in text
    assert "ISO-9001" not in text
