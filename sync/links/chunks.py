"""Every target of some kinds, a chunk at a time: what planning every target reads in bounded
memory after a full derivation (issue 14: a million tickets).

A chunk is a Scope of one kind of target (issues, accounts or tickets) whose figures
`derive.derive_chunks` computes from the stored links, as `derive_scope` does for the targets
a change reached. Refs are read from the store a page at a time (by primary key, never all at
once), and a chunk closes once its targets and the tickets their figures read (an issue's or an
account's linked tickets) reach the chunk's weight: an issue a thousand tickets ask for weighs
a thousand, so a chunk of big issues holds few of them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence

import sqlalchemy as sa

from pmsync.sync.links.changes import Scope
from pmsync.sync.links.world import ref
from pmsync.sync.store.schema import links as links_table
from pmsync.sync.store.schema import records
from pmsync.sync.store.store import Store

# What one chunk holds at most (targets plus the tickets their figures read), unless a single
# target weighs more: a few thousand slim tickets and the records they link to.
CHUNK_WEIGHT = 4000
# Refs read by one statement (a bound parameter each when they are looked up again, under
# SQLite's limit).
_PAGE = 900

ENTITY_OF = {"issue": "issue", "ticket": "feedback", "account": "account"}
_LINK_OF = {"issue": "ticket_issue", "account": "ticket_account"}


def target_chunks(
    store: Store,
    targets: Mapping[str, Collection[str]],
    streams: Mapping[str, Sequence[Sequence[str]]],
    weight: int = CHUNK_WEIGHT,
) -> Iterator[Scope]:
    """Scopes that together hold every live target of `targets` (kind -> the connectors
    holding them) once each; `streams`: by entity, the (connector, stream) pairs the last full
    derivation read (`incremental.streams_of`)."""
    for kind, connectors in targets.items():
        pages = _ref_pages(store, ENTITY_OF[kind], set(connectors), streams)
        for chunk in _packed(store, kind, pages, weight):
            yield _scope(kind, chunk)


def _scope(kind: str, refs: list[str]) -> Scope:
    scope = Scope()
    {"issue": scope.issues, "ticket": scope.tickets, "account": scope.accounts}[kind].update(refs)
    return scope


def _packed(
    store: Store, kind: str, pages: Iterator[list[str]], weight: int
) -> Iterator[list[str]]:
    """The refs of `pages` in chunks of at most `weight` (a heavier target alone)."""
    chunk: list[str] = []
    held = 0
    for page in pages:
        for target, heft in _weights(store, kind, page).items():
            if chunk and held + heft > weight:
                yield chunk
                chunk, held = [], 0
            chunk.append(target)
            held += heft
    if chunk:
        yield chunk


def _weights(store: Store, kind: str, page: list[str]) -> dict[str, int]:
    """Each target's weight: itself and the tickets linked to it (an issue, an account)."""
    link_kind = _LINK_OF.get(kind)
    if link_kind is None:  # a ticket reads its own account and issues only
        return dict.fromkeys(page, 1)
    query = (
        sa.select(links_table.c.target_ref, sa.func.count())
        .where(links_table.c.kind == link_kind, links_table.c.target_ref.in_(page))
        .group_by(links_table.c.target_ref)
    )
    with store.engine.connect() as connection:
        counts: dict[str, int] = {row[0]: int(row[1]) for row in connection.execute(query)}
    return {target: 1 + counts.get(target, 0) for target in page}


def _ref_pages(
    store: Store,
    entity: str,
    connectors: set[str],
    streams: Mapping[str, Sequence[Sequence[str]]],
) -> Iterator[list[str]]:
    """Refs of the live records of `entity` held by `connectors`, a page at a time, each
    once: a key in two streams of one connector is one ref (as in the World), counted in the
    first stream that holds it."""
    pairs = [(str(c), str(s)) for c, s in streams.get(entity, []) if c in connectors]
    for index, (connector, stream) in enumerate(pairs):
        earlier = [s for c, s in pairs[:index] if c == connector]
        for keys in _key_pages(store, connector, stream, entity):
            seen = _held_in(store, connector, earlier, entity, keys)
            page = [ref(connector, key) for key in keys if key not in seen]
            if page:
                yield page


def _live(connector: str, entity: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        records.c.connector == connector,
        records.c.entity == entity,
        records.c.deleted_at.is_(None),
    )


def _key_pages(store: Store, connector: str, stream: str, entity: str) -> Iterator[list[str]]:
    """The stream's live keys of `entity` in key order, a page per statement (a range of the
    primary key: no cursor stays open while the chunks are derived)."""
    after: str | None = None
    while True:
        query = (
            sa.select(records.c.key)
            .where(_live(connector, entity), records.c.stream == stream)
            .order_by(records.c.key)
            .limit(_PAGE)
        )
        if after is not None:
            query = query.where(records.c.key > after)
        with store.engine.connect() as connection:
            keys = list(connection.execute(query).scalars())
        if not keys:
            return
        yield keys
        after = keys[-1]


def _held_in(
    store: Store, connector: str, streams: list[str], entity: str, keys: list[str]
) -> set[str]:
    """Which of `keys` live records of `entity` in `streams` of `connector` hold too."""
    if not streams:
        return set()
    query = sa.select(records.c.key).where(
        _live(connector, entity), records.c.stream.in_(streams), records.c.key.in_(keys)
    )
    with store.engine.connect() as connection:
        return set(connection.execute(query).scalars())
