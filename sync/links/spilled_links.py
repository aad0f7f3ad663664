"""The support tool's integration links (Zendesk's Jira links), kept on disk by ticket while a
full derivation links the tickets a batch at a time.

Linking reads a ticket's integration links by the ticket; nothing else of a derivation reads
them but two small summaries (the projects their keys name, and the old keys they give issues
that moved: `aliases.py`). Held in the World they were the largest thing a streamed derivation
kept while it linked: about one link for every two tickets, some 0.27 KiB a ticket (40 MiB at
150,000 tickets). The store cannot hand them out by ticket (the ticket is a field of the
record's JSON, not an indexed column), so they are copied once into a private temporary SQLite
file indexed by ticket, which each batch then asks for its tickets' links only: memory bounded
by SQLite's page cache, whatever the store's database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import orjson

from pmsync.sync.links.spill_file import SpillFile
from pmsync.sync.links.world import ISSUE_LINK_FIELDS, Entity, ref
from pmsync.sync.store.store import Store

ISSUE_LINK = "issue_link"
_SCHEMA = """
CREATE TABLE link (
    ref TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    ticket TEXT NOT NULL,
    connector TEXT NOT NULL,
    stream TEXT NOT NULL,
    key TEXT NOT NULL,
    fields TEXT NOT NULL
)
"""
_UPSERT = """
INSERT INTO link (ref, seq, ticket, connector, stream, key, fields) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (ref) DO UPDATE SET
    ticket = excluded.ticket, stream = excluded.stream, fields = excluded.fields
"""
_COLUMNS = "ref, connector, stream, key, fields"


class SpilledLinks(SpillFile):
    """Every live integration link of the store, by the ticket it links, in a temporary file.

    A link read again from a later stream of its connector replaces the earlier one but keeps
    its place (as in `World.load`'s dict), so a ticket's links come in the order a World that
    held them all would list them. Close it (or use it as a context manager) to delete the
    file."""

    def __init__(self) -> None:
        super().__init__([_SCHEMA], "integration links")

    @classmethod
    def of_store(cls, store: Store, batch: int = 2000) -> SpilledLinks:
        """Copy the store's live integration links, `batch` rows per insert."""
        spilled = cls()
        rows: list[tuple[str, int, str, str, str, str, str]] = []
        for seq, (connector, stream, key, (_entity, fields)) in enumerate(
            store.iter_unified([ISSUE_LINK])
        ):
            kept = {name: fields[name] for name in ISSUE_LINK_FIELDS if name in fields}
            ticket = ref(connector, str(fields.get("ticket_id")))
            rows.append(
                # Text, not orjson's bytes: each bytes object keeps the 4 KiB buffer it was
                # written in (8 MiB for a batch of rows waiting to be written).
                (
                    ref(connector, key),
                    seq,
                    ticket,
                    connector,
                    stream,
                    key,
                    orjson.dumps(kept).decode(),
                )
            )
            if len(rows) >= batch:
                spilled.write([(_UPSERT, rows)])
                rows = []
        spilled.write([(_UPSERT, rows)])
        spilled.db.execute("CREATE INDEX link_ticket ON link (ticket, seq)")
        return spilled

    def by_ticket(self, tickets: Sequence[str]) -> dict[str, list[Entity]]:
        """The links of `tickets` (refs), by ticket, in the World's order."""
        found: dict[str, list[Entity]] = defaultdict(list)
        query = f"SELECT ticket, {_COLUMNS} FROM link WHERE ticket IN "
        for ticket, *link in self.select_in(query, tickets, " ORDER BY seq"):
            found[ticket].append(_entity(*link))
        return found

    def every(self) -> Iterator[Entity]:
        """Every link, in the World's order (one row at a time)."""
        for row in self.db.execute(f"SELECT {_COLUMNS} FROM link ORDER BY seq"):
            yield _entity(*row)


def _entity(link_ref: str, connector: str, stream: str, key: str, fields: str) -> Entity:
    return Entity(link_ref, connector, stream, key, orjson.loads(fields)).slim(ISSUE_LINK_FIELDS)
