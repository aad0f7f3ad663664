"""The linked world, read from the store: unified records by entity, indexed for linking.

Records are referred to as `connector:key`, which is unique across connector instances.
"""

from __future__ import annotations

import functools
import keyword
import re
import sys
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pmsync.sync.store.store import Store

Unified = Mapping[str, Any]
_SALESFORCE_ID = re.compile(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?")

# What is read of a ticket once it is linked (rollups, write-back, reports, the web view), and
# of a person or an integration link ever (linking): a derivation keeps only these fields, so
# its memory is not that of every full record (a ticket's description, a person's profile).
# Every caller of `World.load` keeps them so (organizations and opportunities too).
TICKET_FIELDS = ("status", "created_at", "subject", "product_area")
PERSON_FIELDS = ("email", "account_id", "organization_id")
# What is read of a contact (a person with an account and an e-mail) found by its e-mail in
# `contacts_by_email`, by linking and surveys: its account.
CONTACT_FIELDS = ("account_id",)
# What is read of an organization ever (linking; usage and survey answers naming the analytics
# tool's own account): its account.
ORGANIZATION_FIELDS = ("external_id", "account_id")
# What is read of an opportunity ever (the sales voice `pipeline.py`, the web view's account
# page): not its owner, probability, type or timestamps.
OPPORTUNITY_FIELDS = (
    "id",
    "name",
    "account_id",
    "amount",
    "currency",
    "stage",
    "is_closed",
    "is_won",
    "loss_reason",
    "close_date",
    "issue_keys",
)
ISSUE_LINK_FIELDS = ("ticket_id", "issue_id", "issue_key")
# What a derivation reads of an account (linking, rollups, voices, scores) and of an issue
# (linking, rollups, a score's scope; a score's declared issue fields come on top): a streamed
# derivation, whose World no plan, report or view reads, keeps only these (`World.load` slim).
ACCOUNT_FIELDS = ("id", "name", "domains", "arr", "currency", "segment")
ISSUE_FIELDS = ("id", "key", "project", "status_category")
# Fields with few distinct values: one string object each, not one per record.
# (An account id is named by its many contacts and opportunities; a currency and a stage by
# many opportunities.)
_SHARED_VALUES = frozenset({"status", "product_area", "account_id", "stage", "currency"})


def ref(connector: str, key: str) -> str:
    return f"{connector}:{key}"


def split_ref(value: str) -> tuple[str, str]:
    connector, _, key = value.partition(":")
    return connector, key


class SlimFields(Mapping[str, Any]):
    """A few fields of a record kept by the ten thousand (a slim ticket, person or integration
    link), read like the dict they come from: each field is a slot of an object whose class
    (one per set of names, `slim_fields`) knows the names. 64 bytes for four fields, where a
    dict of four costs 184; an absent field is an unset slot."""

    __slots__ = ()
    names: ClassVar[tuple[str, ...]] = ()

    def __getitem__(self, name: str) -> Any:
        if name in self.names:
            try:
                return getattr(self, name)
            except AttributeError:  # absent from the record
                pass
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default) if name in self.names else default

    def __contains__(self, name: object) -> bool:
        return name in self.names and hasattr(self, str(name))

    def __iter__(self) -> Iterator[str]:
        return (name for name in self.names if hasattr(self, name))

    def __len__(self) -> int:
        return sum(1 for _name in self)

    def __repr__(self) -> str:
        return repr(dict(self))


def slimmable(names: Collection[str]) -> bool:
    """Whether records can keep these fields as `SlimFields` slots: plain names (a unified
    field may be any text) that are none of its own attributes."""
    return all(
        name.isidentifier() and not keyword.iskeyword(name) and not hasattr(SlimFields, name)
        for name in names
    )


@functools.cache
def slim_fields(names: tuple[str, ...]) -> type[SlimFields]:
    """The `SlimFields` class of records that keep the fields `names`."""
    clashes = set(names) & set(dir(SlimFields))
    if clashes:
        raise ValueError(f"field names clash with SlimFields' own: {sorted(clashes)}")
    return type(
        "SlimFields_" + "_".join(names), (SlimFields,), {"__slots__": names, "names": names}
    )


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

    def slim(self, names: tuple[str, ...]) -> Entity:
        """This record with only the fields `names` (those present), for keeping many."""
        fields = slim_fields(names)()
        for name in names:
            if name in self.fields:
                value = self.fields[name]
                if name in _SHARED_VALUES and isinstance(value, str):
                    value = sys.intern(value)
                setattr(fields, name, value)
        return Entity(self.ref, self.connector, self.stream, self.key, fields)


@dataclass
class World:
    """Every live record the linking and rollups use, with the indexes they need.

    A full derivation keeps its tickets slim (`TICKET_FIELDS`), reads the integration links of
    each batch of tickets from disk (`spilled_links.py`; `link_projects` holds what the World
    needs of the others) and, once the tickets are linked, lets go of the people
    (`derive._forget_linking_inputs`): only linking reads them. It loads people as contacts
    only when asked (`contacts_only`): linking then reads each ticket batch's requesters by key
    (`incremental.requesters`)."""

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
    # Projects named by integration links the World does not hold (`aliases.learn_from_links`).
    link_projects: set[str] = field(default_factory=set)
    # (connector, stream) pairs holding people, in the order `load` reads them.
    person_streams: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        store: Store,
        *,
        skip: Collection[str] = (),
        contacts_only: bool = False,
        slim: Mapping[str, tuple[str, ...]] | None = None,
    ) -> World:
        """Every live record of the entities linking reads, except those in `skip` (an
        incremental derivation adds the tickets it needs itself). `slim`: by entity, the only
        fields kept of its records (each record is slimmed as it is read, so the whole records
        are never held together).

        `contacts_only`: of the people, keep only the contacts, in `contacts_by_email` (with
        `CONTACT_FIELDS`), and leave `people` empty: a full derivation reads the requesters of
        each batch of tickets when it links them, so it never holds every person (at a million
        tickets, hundreds of thousands of end users who are no contact)."""
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
        strings: dict[str, str] = {}  # connector and stream names: one object each
        contacts: dict[str, tuple[str, Entity]] = {}  # ref -> (e-mail, contact): contacts_only
        for read_connector, read_stream, key, unified in store.iter_unified(wanted):
            entity_name, fields = unified
            connector = strings.setdefault(read_connector, read_connector)
            stream = strings.setdefault(read_stream, read_stream)
            record = Entity(ref(connector, key), connector, stream, key, fields)
            if entity_name == "person":
                if not world.person_streams or world.person_streams[-1] != (connector, stream):
                    world.person_streams.append((connector, stream))
                if contacts_only:
                    # The last stream's record of a ref wins, as in `people`: a later one that
                    # is no contact takes an earlier contact's place.
                    email = contact_email(record)
                    if email:
                        contacts[record.ref] = (email, record.slim(CONTACT_FIELDS))
                    else:
                        contacts.pop(record.ref, None)
                    continue
                record = record.slim(PERSON_FIELDS)
            elif entity_name == "organization":
                record = record.slim(ORGANIZATION_FIELDS)
            elif entity_name == "opportunity":
                record = record.slim(OPPORTUNITY_FIELDS)
            elif entity_name == "issue_link":
                record = record.slim(ISSUE_LINK_FIELDS)
            elif slim and entity_name in slim:
                record = record.slim(slim[entity_name])
            buckets[entity_name][record.ref] = record
        world.index()
        for email, contact in contacts.values():
            world.contacts_by_email[email].append(contact)
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
            email = contact_email(person)
            if email:
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


def contact_email(person: Entity) -> str:
    """A contact's e-mail (lower case), by which linking and surveys find its account; "": the
    person has no account or no e-mail (no contact)."""
    email = str(person.get("email", "")).lower()
    return email if email and person.get("account_id") else ""


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
