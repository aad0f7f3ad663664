"""An incremental derivation stores exactly what a full one would, and a quiet one reads nothing.

Random changes (account ARR, segment, currency, domains; issue status, key; tickets edited,
moved between issues, added, deleted; accounts deleted; the rules) are made to a real store;
after each, an incremental derivation runs, and the links and rollups it leaves stored are
compared with those a full derivation computes from the same records.
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from pmsync.sync.links import derive as derive_module
from pmsync.sync.links.changes import dirty_targets, trim_journal
from pmsync.sync.links.derive import _store_rollups, derive
from pmsync.sync.links.linker import Overrides
from pmsync.sync.links.models import LinkSettings, RollupSpec, TicketIssueLinks
from pmsync.sync.links.score_models import ScoreSpec
from pmsync.sync.links.settings import CurrencySettings
from pmsync.sync.store import store as st
from pmsync.sync.store.schema import links, rollups
from pmsync.sync.store.store import RecordRow, Store, content_hash, dumps, utcnow

SETTINGS = LinkSettings(
    ticket_issue=TicketIssueLinks(rules=["override", "jira_integration", "ticket_field", "text"])
)
CURRENCY = CurrencySettings(reporting="USD", rates={"EUR": 1.1})
SPECS = {"customer_demand": RollupSpec(top_accounts=2), "enterprise": RollupSpec(segments=["ent"])}
SCORES = {
    "priority": ScoreSpec.model_validate(
        {"method": "formula", "formula": "arr / 1000 + tickets", "rollup": "customer_demand"}
    )
}
SEGMENTS = ("ent", "mid", "smb")


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


class Company:
    """A small random company kept in step with the store."""

    def __init__(self, store: Store, rng: random.Random) -> None:
        self.store, self.rng = store, rng
        self.accounts: dict[str, dict[str, Any]] = {}
        self.issues: dict[str, dict[str, Any]] = {}
        self.tickets: dict[str, dict[str, Any]] = {}
        for n in range(12):
            self.account(f"001{n:02d}", domains=[f"d{n}.com"])
        for n in range(10):
            self.issue(str(9000 + n), f"APP-{n + 1}")
        for n in range(60):
            self.ticket(str(n))
        put(
            store,
            "salesforce",
            "Opportunity",
            "opportunity",
            [
                {"id": "006A", "name": "Big", "amount": 5000, "currency": "USD",
                 "account_id": "00101", "issue_keys": ["APP-1", "APP-2"]},
                {"id": "006B", "name": "Small", "amount": 700, "currency": "EUR",
                 "account_id": "00102", "issue_keys": ["APP-3"]},
            ],
        )  # fmt: skip
        today = date.today().isoformat()
        put(
            store,
            "salesforce",
            "Contact",
            "person",
            [{"id": f"003{n}", "email": f"c{n}@mail.org", "account_id": f"001{n:02d}"}
             for n in range(6)],
        )  # fmt: skip
        put(
            store,
            "pendo",
            "accounts",
            "organization",
            [{"id": f"p{n}", "account_id": f"001{n:02d}"} for n in range(4)],
        )
        put(
            store,
            "pendo",
            "usage",
            "usage",
            [{"id": f"u{n}", "account_id": f"p{n}" if n < 4 else f"001{n:02d}", "day": today,
              "active_visitors": 10 + n} for n in range(10)],
        )  # fmt: skip
        put(
            store,
            "pendo",
            "nps",
            "survey_response",
            [
                {"id": "s1", "score": 3, "responded_at": today, "account_id": "p1"},
                {"id": "s2", "score": 9, "responded_at": today, "email": "C2@mail.org"},
                {"id": "s3", "score": 5, "responded_at": today, "email": "c3@mail.org"},
            ],
        )  # fmt: skip

    def account(self, key: str, **changes: Any) -> None:
        fields = self.accounts.get(key) or {
            "id": key,
            "name": f"Account {key}",
            "arr": self.rng.randrange(1, 50) * 1000,
            "currency": self.rng.choice(["USD", "EUR"]),
            "segment": self.rng.choice(SEGMENTS),
            "domains": [],
        }
        self.accounts[key] = {**fields, **changes}
        put(self.store, "salesforce", "Account", "account", [self.accounts[key]])

    def issue(self, key: str, issue_key: str | None = None, **changes: Any) -> None:
        fields = self.issues.get(key) or {"id": key, "status": "Open", "project": "APP"}
        if issue_key is not None:
            fields = {**fields, "key": issue_key}
        self.issues[key] = {**fields, **changes}
        put(self.store, "jira", "issues", "issue", [self.issues[key]])

    def ticket(self, key: str) -> None:
        rng = self.rng
        domain = rng.choice([a["domains"] for a in self.accounts.values()] + [["gmail.com"]])
        keys = rng.sample([i["key"] for i in self.issues.values()], rng.randrange(0, 3))
        self.tickets[key] = {
            "id": key,
            "subject": f"ticket {key} about {keys[0] if keys and rng.random() < 0.3 else 'x'}",
            "requester_email": f"p{key}@{domain[0] if domain else 'nowhere.org'}",
            "issue_keys": keys,
            "status": rng.choice(["open", "solved"]),
            "created_at": f"2026-0{rng.randrange(1, 9)}-01T00:00:00Z",
        }
        put(self.store, "zendesk", "tickets", "feedback", [self.tickets[key]])

    def edit_ticket(self, key: str, **changes: Any) -> None:
        self.tickets[key] = {**self.tickets[key], **changes}
        put(self.store, "zendesk", "tickets", "feedback", [self.tickets[key]])

    def change(self) -> str:
        """One random change; returns its kind."""
        rng = self.rng
        kind = rng.choice(
            ["arr", "arr", "arr", "segment", "currency", "status", "status", "domains",
             "issue_key", "ticket", "new_ticket", "delete_ticket", "delete_account", "several"]
        )  # fmt: skip
        account = rng.choice(sorted(self.accounts))
        issue = rng.choice(sorted(self.issues))
        if kind == "arr":
            self.account(account, arr=rng.randrange(1, 90) * 1000)
        elif kind == "segment":
            self.account(account, segment=rng.choice(SEGMENTS))
        elif kind == "currency":
            self.account(account, currency=rng.choice(["USD", "EUR", "GBP"]))
        elif kind == "status":
            self.issue(issue, status=rng.choice(["Open", "In Progress", "Done"]))
        elif kind == "domains":
            self.account(account, domains=[f"d{rng.randrange(20)}.com"])
        elif kind == "issue_key":
            self.issue(issue, f"APP-{rng.randrange(1, 30)}")
        elif kind == "ticket":
            self.ticket(rng.choice(sorted(self.tickets)))
        elif kind == "new_ticket":
            self.ticket(str(100 + len(self.tickets)))
        elif kind == "delete_ticket" and self.tickets:
            key = rng.choice(sorted(self.tickets))
            delete(self.store, "zendesk", "tickets", key)
            del self.tickets[key]
        elif kind == "delete_account" and len(self.accounts) > 3:
            delete(self.store, "salesforce", "Account", account)
            del self.accounts[account]
        elif kind == "several":
            for chosen in rng.sample(sorted(self.accounts), 3):
                self.account(chosen, arr=rng.randrange(1, 90) * 1000)
            self.issue(issue, status="Done")
        return kind


def stored(store: Store) -> tuple[set[tuple[str, str, str, str]], dict[tuple[str, str], str]]:
    with store.engine.connect() as connection:
        found_links = {
            (r.kind, r.ticket_ref, r.target_ref, r.rule)
            for r in connection.execute(sa.select(links))
        }
        found_rollups = {
            (r.name, r.issue_ref): r.content_hash for r in connection.execute(sa.select(rollups))
        }
    return found_links, found_rollups


def truth(
    store: Store, overrides: Overrides
) -> tuple[set[tuple[str, str, str, str]], dict[tuple[str, str], str]]:
    """What a full derivation computes from the records now (nothing stored)."""
    full = derive(store, SETTINGS, overrides, SPECS, CURRENCY, persist=False, scores=SCORES)
    found_links: set[tuple[str, str, str, str]] = {
        (k.kind, k.ticket, k.target, k.rule) for k in full.links.links()
    }
    found_rollups: dict[tuple[str, str], str] = {}
    engine = sa.create_engine("sqlite://")
    rollups.create(engine)
    with engine.begin() as connection:  # hash them exactly as the store does
        for name, per_issue in full.rollups.items():
            _store_rollups(connection, name, per_issue)
        for r in connection.execute(sa.select(rollups)):
            found_rollups[(r.name, r.issue_ref)] = r.content_hash
    return found_links, found_rollups


def incremental(store: Store, overrides: Overrides) -> str:
    derived = derive(
        store,
        SETTINGS,
        overrides,
        SPECS,
        CURRENCY,
        scores=SCORES,
        incremental=True,
        writers=["jira", "salesforce"],
    )
    return derived.mode


def test_incremental_derivations_store_what_a_full_one_computes(store_url: str) -> None:
    store = Store(store_url)
    rng = random.Random(14)
    company = Company(store, rng)
    overrides = Overrides()
    assert incremental(store, overrides) == "full"  # nothing derived yet
    assert stored(store) == truth(store, overrides)
    modes: list[str] = []
    for step in range(40):
        kind = company.change()
        if step == 20:  # a changed rule derives everything again
            overrides = Overrides(issues={"3": ["APP-5"]})
        mode = incremental(store, overrides)
        modes.append(mode)
        assert stored(store) == truth(store, overrides), (step, kind, mode)
        scoped = ("arr", "segment", "currency", "status", "ticket", "new_ticket", "delete_ticket")
        if kind in scoped and step != 20:
            assert mode in ("incremental", "quiet"), (step, kind)  # quiet: the same value
    assert incremental(store, overrides) == "quiet"
    assert "full" in modes
    assert modes.count("incremental") >= 10


def test_ticket_edits_relink_that_ticket_alone_and_store_what_a_full_one_computes(
    store_url: str,
) -> None:
    """A ticket moved to another issue, given another organization (so another account),
    deleted, revived, new, or edited beside an account's ARR: only it is linked again, and the
    links and rollups stored are a full derivation's."""
    store = Store(store_url)
    company = Company(store, random.Random(21))
    put(
        store,
        "zendesk",
        "organizations",
        "organization",
        [{"id": f"o{n}", "external_id": f"001{n:02d}"} for n in range(4)],
    )
    overrides = Overrides()
    assert incremental(store, overrides) == "full"
    with store.transaction() as connection:
        connection.execute(sa.text("DELETE FROM writeback_dirty"))
    keys = sorted(company.tickets, key=int)
    moved, orphan, reorganized = keys[0], keys[1], keys[2]

    def check(what: str) -> None:
        assert incremental(store, overrides) == "incremental", what
        assert stored(store) == truth(store, overrides), what

    company.edit_ticket(moved, issue_keys=["APP-1"], subject="x", requester_email="a@d1.com")
    check("moved to APP-1")
    company.edit_ticket(moved, issue_keys=["APP-2"])
    check("moved from APP-1 to APP-2")
    links_of_moved = {
        (k, t) for k, ticket, t, _r in stored(store)[0] if ticket == f"zendesk:{moved}"
    }
    assert links_of_moved == {("ticket_account", "salesforce:00101"), ("ticket_issue", "jira:9001")}
    with store.engine.connect() as connection:
        _seqs, jira = dirty_targets(connection, "jira")
        _seqs, salesforce = dirty_targets(connection, "salesforce")
    assert jira is not None
    assert {"jira:9000", "jira:9001"} <= jira.issues  # the issue it left and the one it joined
    assert salesforce is not None
    assert "salesforce:00101" in salesforce.accounts
    company.edit_ticket(reorganized, organization_id="o1", issue_keys=["APP-3"])
    check("given organization o1")
    company.edit_ticket(reorganized, organization_id="o2")
    check("moved to organization o2")
    assert (
        "ticket_account",
        f"zendesk:{reorganized}",
        "salesforce:00102",
        "organization_external_id",
    ) in stored(store)[0]
    company.edit_ticket(reorganized, organization_id=None, requester_email="x@gmail.com")
    check("no organization, free mail")
    delete(store, "zendesk", "tickets", orphan)
    check("deleted")
    assert not any(ticket == f"zendesk:{orphan}" for _k, ticket, _t, _r in stored(store)[0])
    put(store, "zendesk", "tickets", "feedback", [company.tickets[orphan]])
    check("revived")
    # PostgreSQL's jsonb refuses a \u0000 escape: such a ticket is read whole, not picked.
    company.edit_ticket(reorganized, description="a\x00b", subject="nul \x00 APP-6")
    check("a NUL in the description and the subject")
    company.account("00102", arr=55_000)
    check("an ARR change reaching the ticket with a NUL")
    company.edit_ticket(moved, subject="see APP-4 and APP-5", issue_keys=[])
    company.account("00101", arr=77_000)
    company.ticket("500")
    check("text keys, an account's ARR and a new ticket at once")
    assert incremental(store, overrides) == "quiet"


def test_a_quiet_derivation_marks_nothing_and_a_value_change_marks_its_targets(
    store_url: str,
) -> None:
    store = Store(store_url)
    company = Company(store, random.Random(3))
    overrides = Overrides()
    incremental(store, overrides)
    with store.engine.connect() as connection:
        seqs, scope = dirty_targets(connection, "jira")
    assert seqs
    assert scope is None
    with store.transaction() as connection:
        connection.execute(sa.text("DELETE FROM writeback_dirty"))
    assert incremental(store, overrides) == "quiet"
    with store.engine.connect() as connection:
        assert dirty_targets(connection, "jira")[0] == []
    company.account("00101", arr=9_999_000)  # asks for issues through its tickets
    assert incremental(store, overrides) == "incremental"
    with store.engine.connect() as connection:
        _seqs, jira = dirty_targets(connection, "jira")
        _seqs, salesforce = dirty_targets(connection, "salesforce")
    assert jira is not None
    assert salesforce is not None
    asked = {
        f"jira:{i}"
        for i, issue in company.issues.items()
        for t in company.tickets.values()
        if issue["key"] in t["issue_keys"] and t["requester_email"].endswith("@d1.com")
    }
    assert asked
    assert asked <= jira.issues
    assert salesforce.accounts == {"salesforce:00101"}


def test_a_journal_past_its_limit_is_dropped_and_the_next_derivation_derives_everything(
    store_url: str,
) -> None:
    store = Store(store_url)
    company = Company(store, random.Random(5))
    overrides = Overrides()
    incremental(store, overrides)  # the journal is on from here (SQLite too)
    for _ in range(12):
        company.change()
    with store.engine.connect() as connection:
        journalled = connection.execute(sa.text("SELECT count(*) FROM derive_changes")).scalar()
    assert journalled
    assert not trim_journal(store, limit=10_000)  # under the limit: kept
    assert trim_journal(store, limit=1)
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM derive_changes")).scalar() == 0
    assert incremental(store, overrides) == "full"  # the dropped changes are not lost
    assert stored(store) == truth(store, overrides)
    assert incremental(store, overrides) == "quiet"


def test_every_target_is_marked_once_per_connector_however_often_it_is_marked(
    store_url: str,
) -> None:
    store = Store(store_url)
    Company(store, random.Random(7))
    overrides = Overrides()
    for _ in range(3):
        derive(store, SETTINGS, overrides, SPECS, CURRENCY, scores=SCORES, writers=["jira"])
    with store.engine.connect() as connection:
        seqs, scope = dirty_targets(connection, "jira")
    assert scope is None
    assert len(seqs) == 1


def test_a_key_in_two_feedback_streams_is_the_last_one_read_in_full_and_incremental(
    store_url: str,
) -> None:
    """One connector, two feedback streams holding the same key: one ticket ref, whose record
    is the later stream's (as World.load reads them), in batches and incrementally alike."""
    store = Store(store_url)
    Company(store, random.Random(5))
    twin = {"id": "X1", "subject": "twin", "requester_email": "x@gmail.com", "status": "open",
            "created_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    put(store, "zendesk", "tickets", "feedback", [{**twin, "issue_keys": ["APP-1"]}])
    put(store, "zendesk", "tickets_zz", "feedback", [{**twin, "issue_keys": []}])
    overrides = Overrides()
    assert incremental(store, overrides) == "full"
    assert stored(store) == truth(store, overrides)
    assert not any(t == "zendesk:X1" and k == "ticket_issue" for k, t, _g, _r in stored(store)[0])
    put(store, "zendesk", "tickets_zz", "feedback", [{**twin, "issue_keys": ["APP-2"]}])
    assert incremental(store, overrides) == "incremental"
    assert stored(store) == truth(store, overrides)
    issue_links = {
        g for k, t, g, _r in stored(store)[0] if t == "zendesk:X1" and k == "ticket_issue"
    }
    assert issue_links == {"jira:9001"}


def test_a_full_derivation_diffs_the_stored_links_a_few_tickets_at_a_time(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every full derivation, its links diffed three tickets at a time (tickets deleted, moved,
    given other rules and accounts among them), leaves stored exactly what it computed and
    counts exactly the links it added and removed; links it kept keep their linked_at."""
    monkeypatch.setattr(derive_module, "_LINK_CHUNK", 3)
    store = Store(store_url)
    rng = random.Random(7)
    company = Company(store, rng)
    overrides = Overrides()
    for step in range(25):
        before, _ = stored(store)
        with store.engine.connect() as connection:
            linked_at = {
                (r.kind, r.ticket_ref, r.target_ref): r.linked_at
                for r in connection.execute(sa.select(links))
            }
        if step == 12:
            overrides = Overrides(issues={"3": ["APP-5", "-APP-1"]}, account={"4": "none"})
        derived = derive(store, SETTINGS, overrides, SPECS, CURRENCY, scores=SCORES)
        after, _ = stored(store)
        assert after == truth(store, overrides)[0], step
        keys = {link[:3] for link in after}
        assert derived.links_added == len(keys - {link[:3] for link in before}), step
        assert derived.links_removed == len({link[:3] for link in before} - keys), step
        with store.engine.connect() as connection:
            for r in connection.execute(sa.select(links)):
                key = (r.kind, r.ticket_ref, r.target_ref)
                if key in linked_at:
                    assert r.linked_at == linked_at[key], (step, key)
        company.change()
        if step % 5 == 0:  # a ticket gone: its stored links are no wanted ticket's
            gone = rng.choice(sorted(company.tickets))
            delete(store, "zendesk", "tickets", gone)
            del company.tickets[gone]


def test_a_changed_ticket_is_relinked_through_its_requester_read_by_key(store_url: str) -> None:
    """Tickets naming their requester by id (no e-mail on the ticket): relinking a changed
    ticket reads its requester's e-mail and organization, as a full derivation does, and a
    ticket handed to another requester takes that requester's account."""
    store = Store(store_url)
    company = Company(store, random.Random(8))
    put(
        store,
        "zendesk",
        "organizations",
        "organization",
        [{"id": "o3", "external_id": "00103"}],
    )
    put(
        store,
        "zendesk",
        "users",
        "person",
        [
            {"id": "u1", "email": "c1@mail.org"},  # a contact's e-mail: account 00101
            {"id": "u2", "email": "someone@d4.com"},  # a domain: account 00104
            {"id": "u3", "email": "x@gmail.com", "organization_id": "o3"},  # 00103
            {"id": "u4", "email": "y@gmail.com"},  # free mail: no account
        ],
    )
    key = sorted(company.tickets, key=int)[0]
    company.edit_ticket(key, requester_email=None, requester_id="u1")
    overrides = Overrides()
    assert incremental(store, overrides) == "full"
    expected_accounts = {"u2": "salesforce:00104", "u3": "salesforce:00103", "u4": None}
    for requester, account in expected_accounts.items():
        company.edit_ticket(key, requester_id=requester)
        assert incremental(store, overrides) == "incremental", requester
        assert stored(store) == truth(store, overrides), requester
        found = {
            target
            for kind, ticket, target, _rule in stored(store)[0]
            if kind == "ticket_account" and ticket == f"zendesk:{key}"
        }
        assert found == ({account} if account else set()), requester
