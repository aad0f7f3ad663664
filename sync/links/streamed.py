"""The pieces of a full derivation that holds no ticket beyond a batch (`derive(hold=False)`).

A held full derivation keeps every ticket, every ticket's links and every rollup in memory
(about 2.3 KiB a ticket: a million tickets would not fit in 500 MiB). A streamed one links a
batch of tickets at a time and writes that batch's links before reading the next; then it
computes the rollups a chunk of issues at a time from the links it just stored, the way an
incremental derivation computes those of a scope (`incremental.py`), with the inputs that read
no ticket (`fixed.py`) computed once. What it holds beside a batch or a chunk is bounded by the
accounts and issues, not the tickets.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from pmsync.sync.links.changes import Scope
from pmsync.sync.links.incremental import TICKETS, scoped_tickets
from pmsync.sync.links.linker import Kind, LinkResult, Unresolved
from pmsync.sync.links.world import World, ref, split_ref
from pmsync.sync.store.schema import links as links_table
from pmsync.sync.store.schema import records
from pmsync.sync.store.schema import rollups as rollups_table

KINDS: tuple[Kind, ...] = ("ticket_account", "ticket_issue")
# Refs one statement names (a bound parameter each, under SQLite's limit of 999).
_KEYS = 900


@dataclass(frozen=True)
class Streaming:
    """How much a streamed derivation reads at a time: `tickets` linked per batch (with their
    requesters); the rollups of a chunk of at most `issues` issues, linked to about `linked`
    tickets (an issue more asked for than that is a chunk of its own), are computed together;
    `refs` of stored links are checked per page for tickets that are gone. Smaller holds less
    and costs more statements; tests make them tiny so that every batch, chunk and page
    boundary is crossed."""

    tickets: int = 2000
    issues: int = 1000
    # Not 5,000: at 90,000 tickets and the demo's mix, chunks that large held 4 MiB more at
    # the derivation's peak, for no time saved that the benchmark could see.
    linked: int = 2500
    refs: int = 2000


@dataclass
class LinkedSoFar:
    """What linking the batches found that outlives them: counts, the (connector, stream)
    pairs holding tickets, and the tickets the rules could not link (by ticket, so that a ticket
    read again from a later stream keeps only its last problems, as a held derivation does)."""

    added: int = 0
    removed: int = 0
    streams: set[tuple[str, str]] = field(default_factory=set)
    unresolved: dict[str, list[Unresolved]] = field(default_factory=dict)

    def add(self, tickets: Iterable[str], result: LinkResult, counted: tuple[int, int]) -> None:
        self.added += counted[0]
        self.removed += counted[1]
        for ticket in tickets:
            self.unresolved.pop(ticket, None)
        for problem in result.unresolved:
            self.unresolved.setdefault(problem.ticket, []).append(problem)

    def result(self, problems: LinkResult) -> LinkResult:
        """A LinkResult with no link: the unresolved tickets and the overrides' problems."""
        unresolved = [u for found in self.unresolved.values() for u in found]
        return LinkResult(unresolved=unresolved, problems=list(problems.problems))

    def ticket_streams(self) -> list[list[str]]:
        return [list(pair) for pair in sorted(self.streams)]


def let_go() -> None:
    """Collect the young generation now: a derivation runs with young collections every
    100,000 allocations (`gcpolicy.bulk_allocation`), so the cyclic garbage each chunk leaves
    (SQLAlchemy's statements and what they reach) piled up several chunks deep before one ran:
    16 MiB more at the peak with 90,000 tickets. Only young objects are walked: cheap."""
    gc.collect(0)


def remove_gone_links(
    connection: sa.Connection, streams: Collection[tuple[str, str]], page: int
) -> int:
    """Delete the stored links of tickets that are no longer live tickets (deleted, gone from
    their stream, or no longer feedback); returns the links removed.

    The linked tickets are read a page at a time in primary-key order (kind, ticket) and
    checked by primary key against the records of the streams holding tickets, so no set of
    every live ticket is built; nothing stays open across the deletes."""
    removed = 0
    for kind in KINDS:
        after = ""
        while refs := _linked_tickets_after(connection, kind, after, page):
            gone = sorted(set(refs) - live_tickets(connection, refs, streams))
            removed += _delete_links(connection, kind, gone)
            after = refs[-1]
    return removed


def _linked_tickets_after(
    connection: sa.Connection, kind: Kind, after: str, limit: int
) -> list[str]:
    query = (
        sa.select(links_table.c.ticket_ref)
        .where(links_table.c.kind == kind, links_table.c.ticket_ref > after)
        .distinct()
        .order_by(links_table.c.ticket_ref)
        .limit(limit)
    )
    return list(connection.execute(query).scalars())


def live_tickets(
    connection: sa.Connection, refs: Sequence[str], streams: Collection[tuple[str, str]]
) -> set[str]:
    """Those of `refs` that are a live ticket in one of `streams`, looked up by primary key."""
    keys_by_connector: dict[str, list[str]] = {}
    for value in refs:
        connector, key = split_ref(value)
        keys_by_connector.setdefault(connector, []).append(key)
    live: set[str] = set()
    for connector, stream in sorted(streams):
        keys = keys_by_connector.get(connector, [])
        for start in range(0, len(keys), _KEYS):
            # The entity is compared here, not in SQL: SQLite would rather scan every ticket
            # by `ix_records_entity` than look these keys up by the primary key.
            query = sa.select(records.c.key, records.c.entity).where(
                records.c.connector == connector,
                records.c.stream == stream,
                records.c.key.in_(keys[start : start + _KEYS]),
                records.c.deleted_at.is_(None),
            )
            rows = connection.execute(query)
            live.update(ref(connector, key) for key, entity in rows if entity == TICKETS)
    return live


def _delete_links(connection: sa.Connection, kind: Kind, tickets: Sequence[str]) -> int:
    removed = 0
    for start in range(0, len(tickets), _KEYS):
        done = connection.execute(
            sa.delete(links_table).where(
                links_table.c.kind == kind,
                links_table.c.ticket_ref.in_(tickets[start : start + _KEYS]),
            )
        )
        removed += done.rowcount
    return removed


def issue_chunks(
    connection: sa.Connection, issues: Iterable[str], sizes: Streaming
) -> Iterator[set[str]]:
    """The issues' refs, sorted, in chunks of at most `sizes.issues` linked to about
    `sizes.linked` tickets in all (by their stored links): chunks of a fixed number of issues
    would hold more tickets the more each issue is asked for."""
    counts = _linked_counts(connection)
    chunk: set[str] = set()
    linked = 0
    for issue in sorted(issues):
        count = counts.get(issue, 0)
        if chunk and (linked + count > sizes.linked or len(chunk) >= sizes.issues):
            yield chunk
            chunk, linked = set(), 0
        chunk.add(issue)
        linked += count
    if chunk:
        yield chunk


def _linked_counts(connection: sa.Connection) -> dict[str, int]:
    """Stored ticket links per issue (counted by the database, on the target index)."""
    query = (
        sa.select(links_table.c.target_ref, sa.func.count())
        .where(links_table.c.kind == "ticket_issue")
        .group_by(links_table.c.target_ref)
    )
    return {issue: int(count) for issue, count in connection.execute(query)}


def chunk_world(
    connection: sa.Connection,
    world: World,
    issues: set[str],
    streams: Mapping[str, Sequence[Sequence[str]]],
) -> tuple[World, LinkResult]:
    """`world` (every account, no ticket) with only `issues` and the tickets linked to them,
    and those tickets' stored links: what the rollups of `issues` read. The accounts and issues
    are shared, not read again per chunk; the other issues are left out so that computing a
    chunk's rollups does not walk every issue (`compute_rollups`)."""
    tickets, result = scoped_tickets(connection, Scope(issues=issues), streams)
    chunk = {issue: world.issues[issue] for issue in sorted(issues) if issue in world.issues}
    return dataclasses.replace(world, tickets=tickets, issues=chunk), result


def remove_gone_rollups(connection: sa.Connection, name: str, issues: Collection[str]) -> list[str]:
    """Delete the stored rollups `name` of issues not among `issues` (deleted issues: they
    were in no chunk); returns their refs."""
    query = sa.select(rollups_table.c.issue_ref).where(rollups_table.c.name == name)
    gone = [issue for issue in connection.execute(query).scalars() if issue not in issues]
    for start in range(0, len(gone), _KEYS):
        connection.execute(
            sa.delete(rollups_table).where(
                rollups_table.c.name == name,
                rollups_table.c.issue_ref.in_(gone[start : start + _KEYS]),
            )
        )
    return gone
