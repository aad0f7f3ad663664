"""Linking rules and rollups over a real store: distinct accounts, one currency, provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pmsync.sync.links.derive import derive
from pmsync.sync.links.linker import Overrides
from pmsync.sync.links.models import LinkSettings, RollupSpec, TicketAccountLinks, TicketIssueLinks
from pmsync.sync.links.settings import CurrencySettings
from pmsync.sync.store import store as st
from pmsync.sync.store.store import RecordRow, Store, content_hash, dumps, utcnow


def put(store: Store, connector: str, stream: str, entity: str, rows: list[dict[str, Any]]) -> None:
    records = []
    for fields in rows:
        raw, unified = dumps(fields), dumps(fields)
        records.append(
            RecordRow(str(fields["id"]), entity, raw, unified, content_hash(raw, unified))
        )
    with store.transaction() as c:
        st.write_records(c, connector, stream, records, utcnow())


def delete(store: Store, connector: str, stream: str, key: str) -> None:
    with store.transaction() as c:
        st.tombstone(c, connector, stream, [key], utcnow())


@pytest.fixture
def store(store_url: str) -> Store:
    store = Store(store_url)
    put(
        store,
        "salesforce",
        "Account",
        "account",
        [
            {
                "id": "001A",
                "name": "Acme",
                "arr": 1_000_000,
                "currency": "USD",
                "segment": "enterprise",
                "domains": ["acme.com"],
            },
            {
                "id": "001B",
                "name": "Globex",
                "arr": 200_000,
                "currency": "EUR",
                "segment": "mid-market",
                "domains": ["globex.io"],
            },
            {
                "id": "001C",
                "name": "Initech",
                "arr": 50_000,
                "currency": "USD",
                "segment": "smb",
                "domains": ["shared.com"],
            },
            {
                "id": "001D",
                "name": "Initrode",
                "arr": 70_000,
                "currency": "USD",
                "segment": "smb",
                "domains": ["shared.com"],
            },
        ],
    )
    put(
        store,
        "salesforce",
        "Contact",
        "person",
        [
            {"id": "003X", "email": "boss@consultants.net", "account_id": "001C"},
        ],
    )
    put(
        store,
        "zendesk",
        "organizations",
        "organization",
        [
            {"id": "10", "external_id": "001A", "name": "Acme Inc"},
        ],
    )
    put(
        store,
        "zendesk",
        "users",
        "person",
        [
            {"id": "u1", "email": "ann@acme.com", "organization_id": "10"},
            {"id": "u2", "email": "bob@globex.io"},
            {"id": "u3", "email": "cat@gmail.com"},
            {"id": "u4", "email": "dan@shared.com"},
            {"id": "u5", "email": "boss@consultants.net"},
        ],
    )
    put(
        store,
        "jira",
        "issues",
        "issue",
        [
            {
                "id": "9001",
                "key": "APP-1",
                "status": "In Progress",
                "status_category": "indeterminate",
            },
            {"id": "9002", "key": "APP-2", "status": "To Do", "status_category": "new"},
            {"id": "9003", "key": "APP-3", "status": "To Do", "status_category": "new"},
        ],
    )
    put(
        store,
        "zendesk",
        "tickets",
        "feedback",
        [
            # Acme through its organization's external id, two tickets on APP-1
            {
                "id": "1",
                "requester_id": "u1",
                "organization_id": "10",
                "issue_keys": ["APP-1"],
                "created_at": "2026-01-05T00:00:00Z",
                "status": "open",
            },
            {
                "id": "2",
                "requester_id": "u1",
                "issue_keys": [],
                "created_at": "2026-02-01T00:00:00Z",
                "status": "solved",
            },
            # Globex through the requester's e-mail domain
            {
                "id": "3",
                "requester_id": "u2",
                "issue_keys": ["app-1"],
                "created_at": "2026-03-01T00:00:00Z",
            },
            # free mail: no account
            {
                "id": "4",
                "requester_id": "u3",
                "issue_keys": ["APP-1"],
                "created_at": "2026-01-01T00:00:00Z",
            },
            # shared.com matches two accounts: ambiguous, not guessed
            {"id": "5", "requester_id": "u4", "issue_keys": ["APP-2"]},
            # contact e-mail beats the (unknown) domain
            {"id": "6", "requester_id": "u5", "issue_keys": [], "subject": "see APP-3 please"},
        ],
    )
    put(
        store,
        "zendesk",
        "jira_links",
        "issue_link",
        [
            {
                "id": "L1",
                "ticket_id": "2",
                "issue_id": "9001",
                "issue_key": "OLD-7",
            },  # moved project
        ],
    )
    return store


SETTINGS = LinkSettings(
    ticket_account=TicketAccountLinks(),
    ticket_issue=TicketIssueLinks(rules=["override", "jira_integration", "ticket_field", "text"]),
)
CURRENCY = CurrencySettings(reporting="USD", rates={"EUR": 1.1})


def test_rules_link_tickets_and_record_which_rule(store: Store) -> None:
    derived = derive(store, SETTINGS, Overrides(), {}, CURRENCY)
    accounts = {t: (link.target, link.rule) for t, link in derived.links.account_of.items()}
    assert accounts == {
        "zendesk:1": ("salesforce:001A", "organization_external_id"),
        "zendesk:2": ("salesforce:001A", "organization_external_id"),  # via requester's org
        "zendesk:3": ("salesforce:001B", "email_domain"),
        "zendesk:6": ("salesforce:001C", "contact_email"),
    }
    review = {
        u.ticket: (u.reason, u.candidates)
        for u in derived.links.unresolved
        if u.kind == "ticket_account"
    }
    assert review["zendesk:5"] == ("ambiguous", ("salesforce:001C", "salesforce:001D"))
    assert review["zendesk:4"][0] == "missing"
    issues = {
        t: {i: link.rule for i, link in per.items()} for t, per in derived.links.issues_of.items()
    }
    assert issues["zendesk:2"] == {"jira:9001": "jira_integration"}  # keyed on issue id
    assert issues["zendesk:3"] == {"jira:9001": "ticket_field"}
    assert issues["zendesk:6"] == {"jira:9003": "text"}


def test_rollup_counts_each_account_once_in_one_currency(store: Store) -> None:
    derived = derive(store, SETTINGS, Overrides(), {"demand": RollupSpec(top_accounts=2)}, CURRENCY)
    app1 = derived.rollups["demand"]["jira:9001"]
    # tickets 1, 2 (Acme, twice), 3 (Globex, EUR), 4 (no account)
    assert app1.tickets == 4
    assert app1.accounts == 2
    assert app1.arr == pytest.approx(1_000_000 + 200_000 * 1.1)
    assert app1.top_accounts == ("Acme", "Globex")
    assert app1.segments == ("enterprise", "mid-market")
    assert app1.unlinked_tickets == 1
    assert app1.first_request == "2026-01-01T00:00:00Z"
    assert app1.last_request == "2026-03-01T00:00:00Z"
    assert (
        app1.summary == "Customer ARR: 1,220,000 USD · 2 accounts · 4 tickets · top: Acme, Globex"
    )
    acme = app1.provenance["accounts"][0]
    assert acme["ref"] == "salesforce:001A"
    assert sorted(acme["tickets"]) == ["zendesk:1", "zendesk:2"]
    assert (
        derived.rollups["demand"]["jira:9002"].accounts == 0
    )  # the ambiguous ticket is not guessed
    assert derived.rollups["demand"]["jira:9002"].tickets == 1


def test_unknown_currency_is_left_out_and_reported(store: Store) -> None:
    derived = derive(store, SETTINGS, Overrides(), {}, CurrencySettings(reporting="USD"))
    app1 = derived.rollups["customer_demand"]["jira:9001"]
    assert app1.arr == 1_000_000
    assert app1.provenance["unconverted_currency"] == ["salesforce:001B"]


def test_overrides_resolve_ambiguity_and_remove_links(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "overrides.toml"
    path.write_text(
        '[ticket_account]\n"5" = "Initrode"\n"4" = "none"\n"zendesk:3" = "nope"\n'
        '[ticket_issue]\n"3" = ["-APP-1", "APP-2"]\n'
    )
    derived = derive(store, SETTINGS, Overrides.load(path), {}, CURRENCY)
    assert derived.links.account_of["zendesk:5"].target == "salesforce:001D"
    assert derived.links.account_of["zendesk:5"].rule == "override"
    assert "zendesk:4" not in {u.ticket for u in derived.links.unresolved}
    assert set(derived.links.issues_of["zendesk:3"]) == {"jira:9002"}
    assert [str(p) for p in derived.problems] == [
        f"{path}: ticket_account.\"zendesk:3\": no account 'nope' in the store"
    ]


def test_only_rollups_of_affected_issues_change(store: Store) -> None:
    first = derive(store, SETTINGS, Overrides(), {}, CURRENCY)
    assert len(first.changed_rollups["customer_demand"]) == 3
    again = derive(store, SETTINGS, Overrides(), {}, CURRENCY)
    assert again.changed_rollups["customer_demand"] == []
    assert (again.links_added, again.links_removed) == (0, 0)
    put(
        store,
        "salesforce",
        "Account",
        "account",
        [
            {
                "id": "001C",
                "name": "Initech",
                "arr": 90_000,
                "currency": "USD",
                "segment": "smb",
                "domains": ["shared.com"],
            },
        ],
    )
    changed = derive(store, SETTINGS, Overrides(), {}, CURRENCY)
    assert changed.changed_rollups["customer_demand"] == ["jira:9003"]  # Initech asks for APP-3
    delete(store, "zendesk", "tickets", "3")
    after_delete = derive(store, SETTINGS, Overrides(), {}, CURRENCY)
    assert after_delete.changed_rollups["customer_demand"] == ["jira:9001"]
    assert after_delete.links_removed == 2  # ticket 3's account and issue links
    assert after_delete.rollups["customer_demand"]["jira:9001"].accounts == 1


def test_active_users_join_usage_directly_or_through_the_analytics_account(store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    put(
        store,
        "pendo",
        "accounts",
        "organization",
        [
            {"id": "P-ACME", "account_id": "001A"},  # Pendo's account names the CRM account
        ],
    )
    put(
        store,
        "pendo",
        "usage",
        "usage",
        [
            {
                "id": "P-ACME:1",
                "account_id": "P-ACME",
                "day": today.isoformat(),
                "active_visitors": 42,
            },
            {
                "id": "P-ACME:2",
                "account_id": "P-ACME",
                "day": (today - timedelta(days=2)).isoformat(),
                "active_visitors": 40,
            },
            {"id": "001B:1", "account_id": "001B", "day": today.isoformat(), "active_visitors": 7},
            {
                "id": "001B:old",
                "account_id": "001B",
                "day": (today - timedelta(days=90)).isoformat(),
                "active_visitors": 900,
            },
        ],
    )
    derived = derive(store, SETTINGS, Overrides(), {"demand": RollupSpec(usage_days=30)}, CURRENCY)
    assert derived.rollups["demand"]["jira:9001"].active_users == 42 + 7  # peak in the window


def test_top_accounts_with_equal_or_no_arr_are_ordered_by_name(store: Store) -> None:
    put(
        store,
        "salesforce",
        "Account",
        "account",
        [
            {"id": "001Z", "name": "zeta labs", "arr": 500, "domains": ["zeta.io"]},
            {"id": "001Y", "name": "Beta", "arr": 500, "domains": ["beta.io"]},
            {"id": "001X", "name": "Alpha", "arr": None, "domains": ["alpha.io"]},
            {"id": "001W", "name": "Omega", "arr": None, "domains": ["omega.io"]},
            {"id": "001V", "name": "Mid", "arr": 900, "currency": "JPY", "domains": ["mid.io"]},
        ],
    )
    put(
        store,
        "zendesk",
        "tickets",
        "feedback",
        [
            {"id": f"t{n}", "requester_email": f"x@{domain}", "issue_keys": ["APP-3"]}
            for n, domain in enumerate(["zeta.io", "omega.io", "beta.io", "alpha.io", "mid.io"])
        ],
    )
    spec = RollupSpec(top_accounts=6)
    derived = derive(store, SETTINGS, Overrides(), {"demand": spec}, CURRENCY)
    app3 = derived.rollups["demand"]["jira:9003"]
    # ARR descending (Initech 50,000 through the text rule; Beta and zeta labs tie at 500), then
    # name whatever its case; no ARR and no rate (JPY) count as nothing and come last, by name.
    assert app3.top_accounts == ("Initech", "Beta", "zeta labs", "Alpha", "Mid", "Omega")
