"""The contacts (by e-mail) and the organizations of the store, kept on disk while a full
derivation links the tickets a batch at a time.

Linking finds a ticket's account through its requester's e-mail (a contact's account) or its
organization (the ticket's, or its requester's); surveys and usage records find theirs the same
way. Nothing else of a streamed derivation reads contacts or organizations, and they grow with
the accounts and people: held in the World, with the demo company's mix (3 contacts and an
organization for every 10 tickets) they were the largest thing a streamed derivation kept
beside the accounts. So, as the integration links (`spilled_links.py`), they are copied once
into a private temporary SQLite file, indexed by what they are looked up by, and each batch of
tickets asks for the contacts of its requesters' e-mails and the organizations it names only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from pmsync.sync.links.spill_file import SpillFile
from pmsync.sync.links.world import (
    CONTACT_FIELDS,
    ORGANIZATION_FIELDS,
    Entity,
    World,
    contact_email,
    ref,
)
from pmsync.sync.store.store import Store

PERSON = "person"
ORGANIZATION = "organization"
_SCHEMA = (
    """
    CREATE TABLE contact (
        ref TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        email TEXT NOT NULL,
        connector TEXT NOT NULL,
        stream TEXT NOT NULL,
        key TEXT NOT NULL,
        fields TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE organization (
        ref TEXT PRIMARY KEY,
        connector TEXT NOT NULL,
        stream TEXT NOT NULL,
        key TEXT NOT NULL,
        fields TEXT NOT NULL
    )
    """,
)
# A contact read again from a later stream keeps its place (as an entry of `World.load`'s
# dict); one that is no contact there is deleted, and comes back last if a later one is.
_UPSERT_CONTACT = """
INSERT INTO contact (ref, seq, email, connector, stream, key, fields)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (ref) DO UPDATE SET
    email = excluded.email, stream = excluded.stream, fields = excluded.fields
"""
_DELETE_CONTACT = "DELETE FROM contact WHERE ref = ?"
_UPSERT_ORGANIZATION = """
INSERT OR REPLACE INTO organization (ref, connector, stream, key, fields) VALUES (?, ?, ?, ?, ?)
"""

_Write = tuple[str, tuple[object, ...]]


class SpilledPeople(SpillFile):
    """The live contacts (by e-mail, `CONTACT_FIELDS`) and organizations (by ref,
    `ORGANIZATION_FIELDS`) of the store in a temporary file, and the (connector, stream) pairs
    holding people, as `World.load(contacts_only=True)` would hold them. Close it (or use it as
    a context manager) to delete the file."""

    def __init__(self) -> None:
        super().__init__(_SCHEMA, "contacts")
        self.person_streams: list[tuple[str, str]] = []

    @classmethod
    def of_store(cls, store: Store, batch: int = 2000) -> SpilledPeople:
        """Copy the store's live contacts and organizations, `batch` rows per write."""
        spilled = cls()
        pending: list[_Write] = []
        for seq, (connector, stream, key, (entity, fields)) in enumerate(
            store.iter_unified([PERSON, ORGANIZATION])
        ):
            record = Entity(ref(connector, key), connector, stream, key, fields)
            if entity == ORGANIZATION:
                kept = _kept(fields, ORGANIZATION_FIELDS)
                pending.append((_UPSERT_ORGANIZATION, (record.ref, connector, stream, key, kept)))
            else:
                spilled._person_stream(connector, stream)
                email = contact_email(record)
                if email:
                    row = (record.ref, seq, email, connector, stream, key)
                    pending.append((_UPSERT_CONTACT, (*row, _kept(fields, CONTACT_FIELDS))))
                else:
                    pending.append((_DELETE_CONTACT, (record.ref,)))
            if len(pending) >= batch:
                spilled.write(_runs(pending))
                pending = []
        spilled.write(_runs(pending))
        spilled.db.execute("CREATE INDEX contact_email ON contact (email, seq)")
        return spilled

    def _person_stream(self, connector: str, stream: str) -> None:
        if not self.person_streams or self.person_streams[-1] != (connector, stream):
            self.person_streams.append((connector, stream))

    def contacts(self, emails: Iterable[str]) -> dict[str, list[Entity]]:
        """The contacts of `emails` (lower case), by e-mail, in the World's order."""
        found: dict[str, list[Entity]] = defaultdict(list)
        query = "SELECT email, ref, connector, stream, key, fields FROM contact WHERE email IN "
        for email, *contact in self.select_in(query, sorted(set(emails)), " ORDER BY seq"):
            found[email].append(_entity(contact, CONTACT_FIELDS))
        return found

    def organizations(self, refs: Iterable[str]) -> dict[str, Entity]:
        """The organizations of `refs`, by ref."""
        query = "SELECT ref, connector, stream, key, fields FROM organization WHERE ref IN "
        return {
            row[0]: _entity(row, ORGANIZATION_FIELDS)
            for row in self.select_in(query, sorted(set(refs)))
        }

    def fill(self, world: World, records: Iterable[Entity]) -> None:
        """Give `world` the contacts and organizations `records` (tickets with their
        requesters among `world.people`, survey answers or usage records) can be linked
        through, and only those: what linking (`World.requester_email`, `World.organization`),
        `surveys.survey_account` and `rollups._usage_account` look up for them."""
        emails: set[str] = set()
        organizations: set[str] = set()
        for record in records:
            emails.update(_emails(world, record))
            organizations.update(_organization_refs(world, record))
        world.contacts_by_email = self.contacts(emails)
        world.organizations = self.organizations(organizations)


def _emails(world: World, record: Entity) -> Iterator[str]:
    """The e-mails a record is looked up by: a ticket's requester's, a survey answer's."""
    email = world.requester_email(record)
    if email:
        yield email
    answered = str(record.get("email") or "").lower()
    if answered:
        yield answered


def _organization_refs(world: World, record: Entity) -> Iterator[str]:
    """The organizations a record is looked up by: a ticket's (or its requester's), and the
    one a survey answer's or usage record's `account_id` may name (the analytics tool's own
    account, synced as an organization)."""
    org_id = record.get("organization_id")
    if not org_id:
        person = world.requester(record)
        org_id = person.get("organization_id") if person else None
    if org_id:
        yield ref(record.connector, str(org_id))
    account_id = record.get("account_id")
    if account_id:
        yield ref(record.connector, str(account_id))


def _runs(
    pending: list[_Write],
) -> Iterator[tuple[str, list[tuple[object, ...]]]]:
    """Consecutive writes of one statement, grouped (their order kept)."""
    statement, rows = "", list[tuple[object, ...]]()
    for next_statement, row in pending:
        if next_statement != statement and rows:
            yield statement, rows
            rows = []
        statement = next_statement
        rows.append(row)
    if rows:
        yield statement, rows


def _kept(fields: dict[str, object], names: tuple[str, ...]) -> str:
    """The fields `names` of a record as JSON text. Text, not orjson's bytes: each bytes
    object it returns keeps the 4 KiB buffer it was written in, so a batch of rows waiting to
    be written held 8 MiB."""
    return orjson.dumps({name: fields[name] for name in names if name in fields}).decode()


def _entity(row: Sequence[Any], names: tuple[str, ...]) -> Entity:
    """A row (ref, connector, stream, key, fields) as the slim record a World would hold."""
    record_ref, connector, stream, key, fields = row
    return Entity(record_ref, connector, stream, key, orjson.loads(fields)).slim(names)
