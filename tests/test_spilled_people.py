"""Contacts and organizations kept on disk (`SpilledPeople`) link tickets as a World holding them.

A streamed full derivation no longer holds the contacts (by e-mail) and the organizations: each
batch of tickets asks the temporary file for those its requesters' e-mails and its
organizations name, and usage records and survey answers ask for theirs. The small world here
reaches accounts by every rule: an organization's external id and its account field (the
ticket's organization, or its requester's), a contact's e-mail (on the ticket or its
requester's; one at two accounts: ambiguous), the e-mail domain (one at two accounts:
ambiguous; free mail: none), an override by name; Salesforce ids by 15 and 18 characters; a
contact read again from a later stream that is no contact there, or under another e-mail. A
streamed derivation with tiny batches (so a batch holds few of them) must store exactly the
links and rollups of a held one, which holds them all, and both the links listed here.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from pmsync.sync.links.derive import Derived, derive
from pmsync.sync.links.linker import Overrides
from pmsync.sync.links.models import LinkSettings, RollupSpec
from pmsync.sync.links.settings import CurrencySettings
from pmsync.sync.links.spilled_people import SpilledPeople
from pmsync.sync.links.streamed import Streaming
from pmsync.sync.links.world import World
from pmsync.sync.store.schema import links, rollups
from pmsync.sync.store.store import Store
from tests.test_incremental_derive import put

A1, A1_15 = "001000000000001AAA", "001000000000001"  # reached by its 15-character id too
A2, A3, A4, A5 = "00100000000000B", "00100000000000C", "00100000000000D", "00100000000000E"
TINY = Streaming(tickets=2, issues=1, linked=2, refs=3)
SPECS = {"customer_demand": RollupSpec(top_accounts=3)}
CURRENCY = CurrencySettings(reporting="USD")
OVERRIDES = Overrides(account={"t13": "Epsilon"})


def fill(store: Store) -> None:
    today = date.today().isoformat()
    put(store, "salesforce", "Account", "account", [
        {"id": A1, "name": "Acme", "domains": ["acme.com"], "arr": 1000, "segment": "ent"},
        {"id": A2, "name": "Beta", "domains": ["Beta.com"], "arr": 2000, "segment": "smb"},
        {"id": A3, "name": "Gamma", "domains": ["shared.com"], "arr": 3000},
        {"id": A4, "name": "Delta", "domains": ["shared.com"], "arr": 4000},
        {"id": A5, "name": "Epsilon", "domains": [], "arr": 5000},
    ])  # fmt: skip
    put(store, "salesforce", "Contact", "person", [
        {"id": "c1", "email": "Ann@Acme.com", "account_id": A1_15},
        {"id": "c2", "email": "bob@gmail.com", "account_id": A2},  # free mail, yet a contact
        {"id": "c3", "email": "dup@x.org", "account_id": A3},
        {"id": "c4", "email": "dup@x.org", "account_id": A4},  # one e-mail, two accounts
        {"id": "c5", "email": "gone@x.org", "account_id": A5},
        {"id": "c6", "email": "moved@x.org", "account_id": A5},
        {"id": "c7", "email": "g@gamma.io", "account_id": A3},
    ])  # fmt: skip
    # A later stream of the connector: c5 is no contact there (no account), c6 has another
    # e-mail; the last stream's record wins.
    put(store, "salesforce", "Contact_2", "person", [
        {"id": "c5", "email": "gone@x.org"},
        {"id": "c6", "email": "new@x.org", "account_id": A5},
    ])  # fmt: skip
    put(store, "zendesk", "users", "person", [
        {"id": "u1", "email": "carl@elsewhere.net", "organization_id": "o2"},
        {"id": "u2", "email": "DUP@x.org"},
        {"id": "u3", "organization_id": "o1"},
    ])  # fmt: skip
    put(store, "zendesk", "organizations", "organization", [
        {"id": "o1", "external_id": A1},
        {"id": "o2", "account_id": A2},
        {"id": "o3", "account_id": "no-such-account"},
    ])  # fmt: skip
    put(store, "jira", "issues", "issue", [
        {"id": str(9000 + n), "key": f"APP-{n}", "project": "APP"} for n in range(1, 4)
    ])  # fmt: skip
    tickets: list[dict[str, Any]] = [
        {"id": "t1", "organization_id": "o1"},  # organization's external id
        {"id": "t2", "requester_id": "u3"},  # its requester's organization
        {"id": "t3", "requester_id": "u1"},  # requester's organization's account field
        {"id": "t4", "requester_email": "ann@acme.com"},  # contact, by a 15-character id
        {"id": "t5", "requester_email": "bob@gmail.com"},  # contact at free mail
        {"id": "t6", "requester_id": "u2"},  # requester's e-mail: a contact at two accounts
        {"id": "t7", "requester_email": "gone@x.org"},  # no contact any more
        {"id": "t8", "requester_email": "moved@x.org"},  # the contact's old e-mail
        {"id": "t9", "requester_email": "new@x.org"},  # its new one
        {"id": "t10", "requester_email": "zed@shared.com"},  # a domain of two accounts
        {"id": "t11", "requester_email": "zed@beta.com"},  # a domain
        {"id": "t12", "organization_id": "o3", "requester_email": "joe@acme.com"},
        {"id": "t13", "requester_email": "someone@gmail.com"},  # overridden, by name
        {"id": "t14", "requester_email": "G@gamma.io"},
    ]
    for n, ticket in enumerate(tickets):
        ticket.update(
            status="open", issue_keys=[f"APP-{n % 3 + 1}"], created_at=f"2026-0{n % 9 + 1}-01"
        )
    put(store, "zendesk", "tickets", "feedback", tickets)
    put(store, "pendo", "accounts", "organization", [{"id": "p1", "account_id": A3}])
    put(store, "pendo", "usage", "usage", [
        {"id": "u1", "account_id": "p1", "day": today, "active_visitors": 7},
        {"id": "u2", "account_id": A1_15, "day": today, "active_visitors": 5},
    ])  # fmt: skip
    put(store, "pendo", "nps", "survey_response", [
        {"id": "s1", "score": 3, "responded_at": today, "account_id": "p1"},
        {"id": "s2", "score": 2, "responded_at": today, "email": "ANN@acme.com"},
        {"id": "s3", "score": 1, "responded_at": today, "email": "dup@x.org"},  # two accounts
    ])  # fmt: skip


def derived(store: Store, *, hold: bool) -> Derived:
    return derive(store, LinkSettings(), OVERRIDES, SPECS, CURRENCY, hold=hold, streaming=TINY)


def tables(store: Store) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    with store.engine.connect() as connection:
        columns = (links.c.kind, links.c.ticket_ref, links.c.target_ref, links.c.rule)
        found_links = {tuple(row) for row in connection.execute(sa.select(*columns))}
        found_rollups = {
            (row.name, row.issue_ref, row.value, row.provenance, row.content_hash)
            for row in connection.execute(sa.select(rollups))
        }
    return found_links, found_rollups


def accounts_linked(found: set[tuple[Any, ...]]) -> dict[str, tuple[str, str]]:
    return {t: (target, rule) for kind, t, target, rule in found if kind == "ticket_account"}


def test_a_streamed_derivation_links_through_contacts_and_organizations_as_a_held_one(
    store_url: str,
) -> None:
    store = Store(store_url)
    fill(store)
    streamed = derived(store, hold=False)
    after_streamed = tables(store)
    held = derived(store, hold=True)
    assert tables(store) == after_streamed
    assert (held.links_added, held.links_removed) == (0, 0)
    assert not any(held.changed_rollups.values())
    assert sorted(map(repr, streamed.links.unresolved)) == sorted(map(repr, held.links.unresolved))
    sf = "salesforce:"
    assert accounts_linked(after_streamed[0]) == {
        "zendesk:t1": (sf + A1, "organization_external_id"),
        "zendesk:t2": (sf + A1, "organization_external_id"),
        "zendesk:t3": (sf + A2, "organization_account_field"),
        "zendesk:t4": (sf + A1, "contact_email"),
        "zendesk:t5": (sf + A2, "contact_email"),
        "zendesk:t9": (sf + A5, "contact_email"),
        "zendesk:t11": (sf + A2, "email_domain"),
        "zendesk:t12": (sf + A1, "email_domain"),
        "zendesk:t13": (sf + A5, "override"),
        "zendesk:t14": (sf + A3, "contact_email"),
    }
    unresolved = {(u.ticket, u.reason) for u in streamed.links.unresolved}
    assert unresolved == {
        ("zendesk:t6", "ambiguous"),
        ("zendesk:t7", "missing"),
        ("zendesk:t8", "missing"),
        ("zendesk:t10", "ambiguous"),
    }
    # The usage and the answers found their accounts through an organization and a contact.
    values = {issue: value for _name, issue, value, _p, _h in after_streamed[1]}
    assert '"active_users":12' in values["jira:9002"]  # A1 (t4, via the 15-character id), A3
    assert '"detractor_accounts":2' in values["jira:9002"]  # A1 (s2) and A3 (s1)
    store.close()


def test_contacts_and_organizations_come_as_a_world_holding_them_lists_them(
    store_url: str,
) -> None:
    store = Store(store_url)
    fill(store)
    held = World.load(store, contacts_only=True)
    emails = sorted({*held.contacts_by_email, "moved@x.org", "nobody@x.org"})
    orgs = sorted({*held.organizations, "zendesk:o9"})
    with SpilledPeople.of_store(store) as spilled:
        spilled_contacts = spilled.contacts(emails)
        spilled_orgs = spilled.organizations(orgs)
        person_streams = spilled.person_streams

    def refs(found: dict[str, list[Any]]) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
        return {
            email: [(c.ref, c.stream, dict(c.fields)) for c in contacts]
            for email, contacts in found.items()
            if contacts
        }

    assert refs(spilled_contacts) == refs(held.contacts_by_email)
    assert [c.ref for c in spilled_contacts["dup@x.org"]] == ["salesforce:c3", "salesforce:c4"]
    assert "gone@x.org" not in spilled_contacts
    assert "moved@x.org" not in spilled_contacts
    assert {k: (o.stream, dict(o.fields)) for k, o in spilled_orgs.items()} == {
        k: (o.stream, dict(o.fields)) for k, o in held.organizations.items()
    }
    assert person_streams == held.person_streams
    store.close()
