"""The linked world, read from the store: unified records by entity, indexed for linking.

Records are referred to as `connector:key`, which is unique across connector instances.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from pmsync.sync.store.store import Store

Unified = dict[str, Any]
_SALESFORCE_ID = re.compile(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?")

# What is read of a ticket once it is linked (rollups, write-back, reports, the web view), and
# of a person or an integration link ever (linking): a derivation keeps only these fields, so
# its memory is not that of every full record (a ticket's description, a person's profile).
TICKET_FIELDS = ("status", "created_at", "subject", "product_area")
PERSON_FIELDS = ("email", "account_id", "organization_id")
ISSUE_LINK_FIELDS = ("ticket_id", "issue_id", "issue_key")
# Fields with few distinct values: one string object each, not one per record.
_SHARED_VALUES = frozenset({"status", "product_area"})


def ref(connector: str, key: str) -> str:
    return f"{connector}:{key}"


def split_ref(value: str) -> tuple[str, str]:
    connector, _, key = value.partition(":")
    return connector, key


@dataclass(slots=True)
class Entity:
    """One live record: where it came from and its unified fields."""

    ref: str
    connector: str
    stream: str
    key: str
    fields: Unified

    def get(self, name: str, default: Any = None) -> Any:
        value = self.fields.get(name)
        return default if value is None else value

    def slim(self, names: Collection[str]) -> Entity:
        """This record with only the fields `names` (those present), for keeping many."""
        fields = {}
        for name in names:
            if name in self.fields:
                value = self.fields[name]
                if name in _SHARED_VALUES and isinstance(value, str):
                    value = sys.intern(value)
                fields[name] = value
        return Entity(self.ref, self.connector, self.stream, self.key, fields)


@dataclass
class World:
    """Every live record the linking and rollups use, with the indexes they need."""

    tickets: dict[str, Entity] = field(default_factory=dict)
    people: dict[str, Entity] = field(default_factory=dict)
    organizations: dict[str, Entity] = field(default_factory=dict)
    accounts: dict[str, Entity] = field(default_factory=dict)
    issues: dict[str, Entity] = field(default_factory=dict)
    issue_links: dict[str, Entity] = field(default_factory=dict)
    usage: dict[str, Entity] = field(default_factory=dict)
    opportunities: dict[str, Entity] = field(default_factory=dict)
    opportunity_issues: dict[str, Entity] = field(default_factory=dict)
    surveys: dict[str, Entity] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    by_account_id: dict[str, Entity] = field(default_factory=dict)
    by_issue_id: dict[str, Entity] = field(default_factory=dict)
    by_issue_key: dict[str, Entity] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # old key -> the issue's current key
    accounts_by_domain: dict[str, list[Entity]] = field(default_factory=lambda: defaultdict(list))
    contacts_by_email: dict[str, list[Entity]] = field(default_factory=lambda: defaultdict(list))
    links_by_ticket: dict[str, list[Entity]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def load(cls, store: Store, *, skip: Collection[str] = ()) -> World:
        """Every live record of the entities linking reads, except those in `skip` (an
        incremental derivation adds the tickets it needs itself)."""
        world = cls()
        buckets = {
            "feedback": world.tickets,
            "person": world.people,
            "organization": world.organizations,
            "account": world.accounts,
            "issue": world.issues,
            "issue_link": world.issue_links,
            "usage": world.usage,
            "opportunity": world.opportunities,
            "opportunity_issue": world.opportunity_issues,
            "survey_response": world.surveys,
        }
        wanted = [name for name in buckets if name not in skip]
        for connector, stream, key, unified in store.iter_unified(wanted):
            entity_name, fields = unified
            record = Entity(ref(connector, key), connector, stream, key, fields)
            if entity_name == "person":
                record = record.slim(PERSON_FIELDS)
            elif entity_name == "issue_link":
                record = record.slim(ISSUE_LINK_FIELDS)
            buckets[entity_name][record.ref] = record
        world.index()
        return world

    def index(self) -> None:
        """The look-ups linking uses (accounts, contacts, issues, integration links)."""
        for account in self.accounts.values():
            self.by_account_id[account.key] = account
            if _SALESFORCE_ID.fullmatch(account.key):  # an 18-char id is also known by 15
                self.by_account_id.setdefault(account.key[:15], account)
            for domain in account.get("domains", []):
                self.accounts_by_domain[str(domain).lower()].append(account)
        for person in self.people.values():
            email = str(person.get("email", "")).lower()
            if email and person.get("account_id"):
                self.contacts_by_email[email].append(person)
        for issue in self.issues.values():
            self.by_issue_id[str(issue.get("id", issue.key))] = issue
            if issue.get("key"):
                self.by_issue_key[str(issue.get("key")).upper()] = issue
        for link in self.issue_links.values():
            self.links_by_ticket[ref(link.connector, str(link.get("ticket_id")))].append(link)

    def alias(self, old_key: str, issue: Entity) -> None:
        """Let `old_key` (a key the issue had before it moved) find `issue` too."""
        key = old_key.upper()
        if key not in self.by_issue_key:
            self.by_issue_key[key] = issue
            self.aliases[key] = str(issue.get("key", issue.key))

    def account(self, account_id: Any) -> Entity | None:
        if not account_id:
            return None
        text = str(account_id)
        found = self.by_account_id.get(text)
        if found is None and _SALESFORCE_ID.fullmatch(text):
            found = self.by_account_id.get(text[:15])
        return found

    def requester(self, ticket: Entity) -> Entity | None:
        requester = ticket.get("requester_id")
        return self.people.get(ref(ticket.connector, str(requester))) if requester else None

    def organization(self, ticket: Entity) -> Entity | None:
        org_id = ticket.get("organization_id")
        if not org_id:
            person = self.requester(ticket)
            org_id = person.get("organization_id") if person else None
        return self.organizations.get(ref(ticket.connector, str(org_id))) if org_id else None

    def requester_email(self, ticket: Entity) -> str | None:
        email = ticket.get("requester_email")
        if not email:
            person = self.requester(ticket)
            email = person.get("email") if person else None
        return str(email).lower() if email else None


def ticket_batches(store: Store, size: int = 2000) -> Iterator[list[Entity]]:
    """Every live ticket (entity feedback), a batch at a time, in the order `World.load` reads
    them: a derivation links and slims one batch before it reads the next."""
    batch: list[Entity] = []
    strings: dict[str, str] = {}  # connector and stream names: one object each
    for read_connector, read_stream, key, (_entity, fields) in store.iter_unified(["feedback"]):
        connector = strings.setdefault(read_connector, read_connector)
        stream = strings.setdefault(read_stream, read_stream)
        batch.append(Entity(ref(connector, key), connector, stream, key, fields))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
