"""A derivation's World holds few fields of most records, and finds with them what full
records would: a full derivation reads each ticket batch's requesters by key and holds only the
contacts, and links exactly as linking with every person loaded does; organizations and
opportunities keep the fields that are read of them.

The requesters are end users of the ticket's connector, found by `requester_id`: their
organization and e-mail link the ticket when the ticket names neither. A ref held by two
person streams is the later stream's record (a contact in the first, none in the second, and
the other way round); more requesters than one statement's keys (900) are read in one batch.
"""

from __future__ import annotations

import functools
import random
from typing import Any

import pytest

from pmsync.sync.links import derive as derive_module
from pmsync.sync.links.derive import derive
from pmsync.sync.links.linker import Linker, Overrides
from pmsync.sync.links.models import LinkSettings, RollupSpec
from pmsync.sync.links.pipeline import compute_pipeline
from pmsync.sync.links.settings import CurrencySettings
from pmsync.sync.links.surveys import latest_scores
from pmsync.sync.links.world import OPPORTUNITY_FIELDS, Entity, World, ref, ticket_batches
from pmsync.sync.store import store as st
from pmsync.sync.store.store import RecordRow, Store, content_hash, dumps, utcnow

SETTINGS = LinkSettings()
CURRENCY = CurrencySettings(reporting="USD")
SPECS = {"customer_demand": RollupSpec()}
USERS = 950


def put(store: Store, connector: str, stream: str, entity: str, rows: list[dict[str, Any]]) -> None:
    records = []
    for fields in rows:
        raw = unified = dumps(fields)
        records.append(
            RecordRow(str(fields["id"]), entity, raw, unified, content_hash(raw, unified))
        )
    with store.transaction() as c:
        st.write_records(c, connector, stream, records, utcnow())


def company(store: Store, rng: random.Random) -> None:
    """Accounts with domains, organizations naming them, CRM contacts, end users (some of them
    contacts, some in two streams) and tickets that name only their requester."""
    put(
        store,
        "salesforce",
        "Account",
        "account",
        [{"id": f"001{n:02d}", "name": f"A{n}", "domains": [f"d{n}.com"]} for n in range(10)],
    )
    put(store, "jira", "issues", "issue", [{"id": "9000", "key": "APP-1", "project": "APP"}])
    put(
        store,
        "zendesk",
        "organizations",
        "organization",
        [{"id": f"o{n}", "external_id": f"001{n:02d}" if n < 5 else None} for n in range(8)],
    )
    put(
        store,
        "salesforce",
        "Contact",
        "person",
        [{"id": f"003{n}", "email": f"c{n}@mail.org", "account_id": f"001{n:02d}"}
         for n in range(6)],
    )  # fmt: skip
    users = []
    for n in range(USERS):
        user: dict[str, Any] = {"id": f"u{n}"}
        if rng.random() < 0.8:
            user["email"] = rng.choice(
                [
                    f"u{n}@d{rng.randrange(12)}.com",
                    f"u{n}@gmail.com",
                    f"c{rng.randrange(8)}@mail.org",
                ]
            )
        if rng.random() < 0.4:
            user["organization_id"] = f"o{rng.randrange(9)}"
        if rng.random() < 0.2:
            user["account_id"] = f"001{rng.randrange(12):02d}"  # a contact (when it has e-mail)
        users.append(user)
    users[0] = {"id": "u0", "email": "u0@d2.com", "account_id": "00102"}  # a contact here
    put(store, "zendesk", "users", "person", users)
    # A later stream's record of the same ref wins: contacts that are none there and back.
    put(
        store,
        "zendesk",
        "users_zz",
        "person",
        [
            {"id": "u0", "email": "c1@mail.org"},  # no account: no contact any more
            {"id": "u1", "email": "new@d3.com", "account_id": "00104"},
            {"id": "u2", "organization_id": "o1"},
        ],
    )
    put(
        store,
        "zendesk",
        "tickets",
        "feedback",
        [
            {"id": f"t{n}", "subject": "help", "requester_id": f"u{rng.randrange(USERS + 20)}",
             "status": "open", "created_at": "2026-01-01T00:00:00Z"}
            for n in range(1200)
        ] + [
            {"id": "t-u0", "requester_id": "u0", "status": "open"},
            {"id": "t-u1", "requester_id": "u1", "status": "open"},
            {"id": "t-u2", "requester_id": "u2", "status": "open"},
            {"id": "t-none", "status": "open"},
        ],
    )  # fmt: skip
    put(
        store,
        "pendo",
        "nps",
        "survey_response",
        [
            {"id": "s1", "score": 3, "responded_at": "2026-01-02", "email": "c1@mail.org"},
            {"id": "s2", "score": 9, "responded_at": "2026-01-02", "email": "new@d3.com"},
            {"id": "s3", "score": 5, "responded_at": "2026-01-02", "email": "c3@mail.org"},
            {"id": "s4", "score": 8, "responded_at": "2026-01-02", "account_id": "p7"},
        ],
    )
    # The survey tool's own account, naming the CRM's.
    put(store, "pendo", "accounts", "organization", [{"id": "p7", "account_id": "00107"}])


def links_of(links: Any) -> set[tuple[str, str, str, str]]:
    return {(k.kind, k.ticket, k.target, k.rule) for k in links}


@pytest.mark.parametrize("batch", [2000, 7])
def test_a_full_derivation_links_each_batch_with_its_requesters_read_by_key(
    store_url: str, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(store_url)
    company(store, random.Random(11))
    monkeypatch.setattr(
        derive_module, "ticket_batches", functools.partial(ticket_batches, size=batch)
    )
    everything = World.load(store)  # every person, as linking read them before
    expected = Linker(SETTINGS, Overrides()).link(everything)

    derived = derive(store, SETTINGS, Overrides(), SPECS, CURRENCY, persist=False)

    assert links_of(derived.links.links()) == links_of(expected.links())
    assert sorted(map(repr, derived.links.unresolved)) == sorted(map(repr, expected.unresolved))
    # The requesters' records decided: organizations, contact e-mails, domains, free mail.
    rules = {link.rule for link in derived.links.account_of.values()}
    assert {"organization_external_id", "contact_email", "email_domain"} <= rules
    assert derived.links.account_of["zendesk:t-u1"].target == "salesforce:00104"
    # The later stream's record of a requester decides: its organization.
    assert derived.links.account_of["zendesk:t-u2"].rule == "organization_external_id"
    assert derived.links.account_of["zendesk:t-u2"].target == "salesforce:00101"
    # Only the contacts are held, slim, and surveys find the same accounts through them.
    assert derived.world.people == {}
    contacts = {e: sorted(c.ref for c in cs) for e, cs in derived.world.contacts_by_email.items()}
    assert contacts == {
        e: sorted(c.ref for c in cs) for e, cs in everything.contacts_by_email.items()
    }
    assert "zendesk:u0" not in {r for refs in contacts.values() for r in refs}
    assert contacts["new@d3.com"] == ["zendesk:u1"]
    held = [c.fields for cs in derived.world.contacts_by_email.values() for c in cs]
    assert held
    assert all(set(fields) == {"account_id"} for fields in held)
    assert latest_scores(derived.world) == latest_scores(everything)
    nps = latest_scores(derived.world)["nps"]
    assert nps["salesforce:00107"].response == "pendo:s4"  # through the slim organization
    assert nps["salesforce:00104"].response == "pendo:s2"  # through a requester who is a contact
    slim = [set(o.fields) for o in derived.world.organizations.values()]
    assert all(names <= {"external_id", "account_id"} for names in slim)


def test_slim_opportunities_give_the_pipeline_full_records_give(store_url: str) -> None:
    store = Store(store_url)
    company(store, random.Random(3))
    opportunities = [
        {"id": f"006{n}", "name": f"Deal {n}", "account_id": f"001{n % 10:02d}",
         "amount": 1000 * n, "currency": "EUR" if n % 3 else "USD",
         "stage": "Closed Lost" if n % 4 == 1 else "Negotiation", "is_closed": n % 4 == 1,
         "is_won": False, "loss_reason": "price" if n % 8 == 1 else None,
         "close_date": "2026-03-01", "issue_keys": ["app-1"] if n % 2 else [],
         "owner": "someone", "probability": 40, "type": "New", "updated_at": "2026-01-01"}
        for n in range(12)
    ]  # fmt: skip
    put(store, "salesforce", "Opportunity", "opportunity", opportunities)
    put(
        store,
        "salesforce",
        "Opportunity_Issue__c",
        "opportunity_issue",
        [{"id": "j1", "opportunity_id": "0062", "issue_id": "9000"}],
    )
    derived = derive(store, SETTINGS, Overrides(), SPECS, CURRENCY, persist=False)

    held = derived.world.opportunities
    assert len(held) == 12
    assert all(set(o.fields) <= set(OPPORTUNITY_FIELDS) for o in held.values())
    full = World.load(store)
    for connector, stream, key, (_entity, fields) in store.iter_unified(["opportunity"]):
        full.opportunities[ref(connector, key)] = Entity(
            ref(connector, key), connector, stream, key, fields
        )
    expected = compute_pipeline(full, derived.currencies)
    assert derived.voices.pipeline == expected
    cited = expected["jira:9000"]  # 3, 7, 11 and 2 (a junction) open; 1, 5 and 9 lost
    assert (cited.opportunities, cited.lost) == (4, 3)
    assert dict(cited.lost_reasons)["price"] == 2
