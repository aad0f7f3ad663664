"""Derive the rollups of some issues only, from the stored links and a World without most tickets.

An incremental derivation re-computes what a change can move and nothing else. It is used when
every changed record is a ticket (`relink.py` links the changed tickets again, alone), or an
account or an issue whose linking fields (an account's domains and name, an issue's id and key)
did not change: no other ticket's link moves, so the stored links are still the links but for
the changed tickets', and only the rollups of the issues those records reach (a ticket: the
issues it asked for before and asks for now) change. Those rollups are computed by the same
code as a full derivation's (`compute_rollups`, `hear_voices`) over a World that holds the
tickets of the issues and accounts in scope and the accounts and issues they link to: the
figures are therefore the ones a full derivation would compute. A weighted score normalises
across all issues, so with one declared any change derives everything.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from pmsync.sync.links.changes import Change, Scope, link_fingerprint, stored_inputs
from pmsync.sync.links.fixed import FixedInputs
from pmsync.sync.links.linker import Link, LinkResult
from pmsync.sync.links.models import RollupSpec
from pmsync.sync.links.rollups import Currencies, Rollup, compute_rollups
from pmsync.sync.links.score_models import ScoreSpec, normalises_across_issues
from pmsync.sync.links.voices import Voices, hear_voices
from pmsync.sync.links.world import (
    PERSON_FIELDS,
    TICKET_FIELDS,
    Entity,
    World,
    ref,
    split_ref,
)
from pmsync.sync.store.schema import records
from pmsync.sync.store.store import Store, select_in

VALUE_ONLY = ("account", "issue")  # entities whose non-linking changes derive incrementally
TICKETS = "feedback"  # tickets: any change (edit, new, deleted) derives incrementally


def scoped_changes(
    store: Store,
    changes: Sequence[Change],
    scores: Mapping[str, ScoreSpec],
    derived_from: set[str],
    streams: Mapping[str, Sequence[Sequence[str]]],
) -> Scope | None:
    """What changed, as a Scope: accounts and issues whose values changed, and tickets changed
    in any way (stored, edited, deleted, revived); None when a change needs a full derivation.

    An account or issue that is new, deleted or revived, or whose linking fields changed, can
    move the links of any ticket: None. So can a person, an organization or any other entity.
    A ticket moves only its own links; it must be in a stream that held tickets at the last
    full derivation (`streams`): a stream mapped anew (its records' entity changed) derives all.
    """
    relevant = [c for c in changes if c.entity in derived_from]
    if not relevant:
        return Scope()
    if any(c.entity not in (*VALUE_ONLY, TICKETS) for c in relevant):
        return None
    if normalises_across_issues(scores):
        return None
    ticket_streams = {(str(c), str(s)) for c, s in streams.get(TICKETS, [])}
    scope = Scope()
    values = []
    for change in relevant:
        if change.entity != TICKETS:
            values.append(change)
        elif (change.connector, change.stream) in ticket_streams:
            scope.tickets.add(change.ref)
        else:
            return None
    return scope if _add_values(store, values, scope) else None


def _add_values(store: Store, changes: Sequence[Change], scope: Scope) -> bool:
    """Add the changed accounts and issues to `scope`; False if one can move a link."""
    current = _current(store, changes)
    known = _known_inputs(store, current)
    for change in changes:
        found = current.get((change.connector, change.stream, change.key))
        if found is None or found[0] != change.entity:
            return False  # tombstoned (or its entity changed): links move
        if known.get(change.ref) != link_fingerprint(change.entity, found[1]):
            return False  # new, or its linking fields changed
        (scope.accounts if change.entity == "account" else scope.issues).add(change.ref)
    return True


def _known_inputs(
    store: Store, current: Mapping[tuple[str, str, str], tuple[str, dict[str, Any]]]
) -> dict[str, str]:
    with store.engine.connect() as connection:
        return stored_inputs(connection, (ref(c, k) for c, _s, k in current))


def _current(
    store: Store, changes: Sequence[Change]
) -> dict[tuple[str, str, str], tuple[str, dict[str, Any]]]:
    """(entity, unified) of the live records among `changes`."""
    found: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}
    by_stream: dict[tuple[str, str], set[str]] = {}
    for change in changes:
        by_stream.setdefault((change.connector, change.stream), set()).add(change.key)
    with store.engine.connect() as connection:
        for (connector, stream), keys in by_stream.items():
            wanted = sorted(keys)
            for start in range(0, len(wanted), 900):
                rows = connection.execute(
                    sa.select(records.c.key, records.c.entity, records.c.unified).where(
                        records.c.connector == connector,
                        records.c.stream == stream,
                        records.c.key.in_(wanted[start : start + 900]),
                        records.c.deleted_at.is_(None),
                    )
                )
                for key, entity, unified in rows:
                    found[(connector, stream, key)] = (entity, orjson.loads(unified))
    return found


def widen(store: Store, changed: Scope) -> Scope:
    """What a value-only change reaches: a changed account's issues (through its tickets) and a
    changed issue's tickets, besides the changed records themselves (targets to plan again)."""
    scope = Scope(set(changed.issues), set(changed.tickets), set(changed.accounts))
    with store.engine.connect() as connection:
        tickets_of_accounts = _tickets_linked(connection, "ticket_account", changed.accounts)
        scope.issues |= _issues_of_tickets(connection, tickets_of_accounts)
        scope.tickets |= _tickets_linked(connection, "ticket_issue", changed.issues)
    return scope


def _tickets_linked(connection: sa.Connection, kind: str, targets: Iterable[str]) -> set[str]:
    sql = "SELECT ticket_ref FROM links WHERE kind = {mark} AND target_ref IN ({keys})"
    return {row[0] for row in select_in(connection, sql, (kind,), sorted(targets))}


def _issues_of_tickets(connection: sa.Connection, tickets: Iterable[str]) -> set[str]:
    sql = "SELECT target_ref FROM links WHERE kind = {mark} AND ticket_ref IN ({keys})"
    return {row[0] for row in select_in(connection, sql, ("ticket_issue",), sorted(tickets))}


def scoped_world(
    store: Store, scope: Scope, streams: Mapping[str, Sequence[Sequence[str]]]
) -> tuple[World, LinkResult]:
    """A World for the scope's figures, and the stored links of its tickets.

    It holds the tickets the scope's figures read (those of its issues and accounts, and its
    tickets), the accounts and issues those tickets link to; usage, survey answers and
    opportunities are not read (their figures are kept, `fixed.py`). `streams`: by entity, the
    (connector, stream) pairs holding its records at the last full derivation.
    """
    world = World()
    with store.engine.connect() as connection:
        world.tickets, result = scoped_tickets(connection, scope, streams)
        accounts = {link.target for link in result.account_of.values()}
        load_records(connection, world.accounts, "account", accounts | scope.accounts, streams)
        issues = {issue for per in result.issues_of.values() for issue in per}
        load_records(connection, world.issues, "issue", issues | scope.issues, streams)
    world.index()
    return world, result


def scoped_tickets(
    connection: sa.Connection, scope: Scope, streams: Mapping[str, Sequence[Sequence[str]]]
) -> tuple[dict[str, Entity], LinkResult]:
    """The tickets the scope's figures read (those linked to its issues and accounts, and its
    tickets; `TICKET_FIELDS`) and their stored links: a streamed full derivation reads those of
    a chunk of issues so, beside a World it already holds (`derive._chunk_world`)."""
    wanted = set(scope.tickets)
    wanted |= _tickets_linked(connection, "ticket_issue", scope.issues)
    wanted |= _tickets_linked(connection, "ticket_account", scope.accounts)
    tickets: dict[str, Entity] = {}
    load_records(connection, tickets, "feedback", wanted, streams, TICKET_FIELDS)
    return tickets, stored_links(connection, set(tickets))


def streams_of(world: World) -> dict[str, list[list[str]]]:
    """By entity, the (connector, stream) pairs holding the tickets, accounts and issues."""
    found: dict[str, list[list[str]]] = {}
    for entity, records_of in (
        ("feedback", world.tickets),
        ("account", world.accounts),
        ("issue", world.issues),
    ):
        pairs = sorted({(e.connector, e.stream) for e in records_of.values()})
        found[entity] = [list(pair) for pair in pairs]
    return found


def load_records(
    connection: sa.Connection,
    into: dict[str, Entity],
    entity: str,
    refs: Iterable[str],
    streams: Mapping[str, Sequence[Sequence[str]]],
    fields: Sequence[str] = (),
) -> None:
    """Live records of `entity` by ref (connector:key), looked up by primary key per stream.

    `fields` (two or more): only these fields, picked out by the database (SQLite, PostgreSQL),
    so a ticket's description is neither sent nor parsed: most of an incremental derivation's
    time went to parsing the full records of the tickets it re-counts."""
    keys_by_connector: dict[str, list[str]] = {}
    for value in refs:
        connector, key = split_ref(value)
        keys_by_connector.setdefault(connector, []).append(key)
    sql = (
        f"SELECT key, entity, {_picked_sql(connection.dialect, tuple(fields))} FROM records "
        "WHERE connector = {mark} AND stream = {mark} AND deleted_at IS NULL AND key IN ({keys})"
    )
    for connector, stream in streams.get(entity, []):
        keys = sorted(keys_by_connector.get(connector, []))
        for key, found, unified in select_in(connection, sql, (connector, stream), keys):
            if found != entity:
                continue
            loaded = orjson.loads(unified)
            if isinstance(loaded, list):  # picked: values in `fields` order; null: absent
                loaded = {n: v for n, v in zip(fields, loaded, strict=True) if v is not None}
            elif fields:  # the whole record came (see _picked): the same fields of it
                loaded = {n: loaded[n] for n in fields if loaded.get(n) is not None}
            into[ref(connector, key)] = Entity(ref(connector, key), connector, stream, key, loaded)


def requesters(store: Store, world: World, tickets: Iterable[Entity]) -> dict[str, Entity]:
    """The people `tickets` name as requesters (by ref, `PERSON_FIELDS`), read by primary key
    from the streams holding people, the last stream's record of a ref winning as in
    `World.load`: what `World.requester` finds for these tickets. A World loaded with
    `contacts_only` links tickets with these as its people (a full derivation a batch at a
    time, `relink` the changed tickets), never holding every person."""
    refs = {
        ref(ticket.connector, str(requester))
        for ticket in tickets
        if (requester := ticket.get("requester_id"))
    }
    found: dict[str, Entity] = {}
    if refs and world.person_streams:
        streams = {"person": world.person_streams}
        with store.engine.connect() as connection:
            load_records(connection, found, "person", refs, streams, PERSON_FIELDS)
    return found


@functools.lru_cache(maxsize=16)
def _picked_sql(dialect: sa.Dialect, fields: tuple[str, ...]) -> str:
    """The SQL of `_picked` on this dialect (the whole record, `unified`, when it picks none),
    its field names written as literals: `load_records` runs plain SQL (`select_in`)."""
    picked = _picked(dialect, fields)
    if picked is None:
        return "unified"
    text = str(picked.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    # psycopg reads a lone % as a placeholder; SQLite takes the text as it is.
    return text.replace("%", "%%") if dialect.paramstyle != "qmark" else text


def _picked(dialect: sa.Dialect, fields: Sequence[str]) -> sa.ColumnElement[Any] | None:
    """A JSON array of the record's `fields`, computed by the database; None: read it all."""
    if len(fields) < 2:  # SQLite's json_extract returns an array for two paths or more
        return None
    if dialect.name == "sqlite":
        paths = [f'$."{name}"' for name in fields]
        return sa.func.json_extract(records.c.unified, *paths)
    if dialect.name == "postgresql":
        # jsonb refuses a \u0000 escape anywhere in a document, even in a field not picked:
        # such a record comes whole (a JSON object, not an array) and is picked in Python.
        document = sa.cast(records.c.unified, JSONB)
        picked = sa.cast(sa.func.jsonb_build_array(*(document[name] for name in fields)), sa.Text)
        has_nul = sa.func.strpos(records.c.unified, sa.literal("\\u0000")) > 0
        return sa.case((has_nul, records.c.unified), else_=picked)
    return None


def stored_links(connection: sa.Connection, tickets: set[str]) -> LinkResult:
    """The stored links of `tickets`, read by the primary key (it leads with the kind)."""
    result = LinkResult()
    wanted = sorted(tickets)
    sql = (
        "SELECT ticket_ref, target_ref, rule FROM links "
        "WHERE kind = {mark} AND ticket_ref IN ({keys})"
    )
    for ticket, target, rule in select_in(connection, sql, ("ticket_account",), wanted):
        result.account_of[ticket] = Link("ticket_account", ticket, target, rule)
    for ticket, target, rule in select_in(connection, sql, ("ticket_issue",), wanted):
        result.issues_of.setdefault(ticket, {})[target] = Link("ticket_issue", ticket, target, rule)
    return result


def scoped_rollups(
    world: World,
    result: LinkResult,
    issues: set[str],
    rollup_specs: Mapping[str, RollupSpec],
    currencies: Currencies,
    scores: Mapping[str, ScoreSpec],
    fixed: Mapping[str, FixedInputs],
) -> tuple[dict[str, dict[str, Rollup]], Voices]:
    """The rollups (with the voices' figures and the scores) of `issues`, as a full
    derivation computes them, from the inputs it kept (`fixed`)."""
    specs = dict(rollup_specs) or {"customer_demand": RollupSpec()}
    rollups = {
        name: compute_rollups(
            world, result, spec, currencies, name=name, only=issues, usage=fixed[name].usage
        )
        for name, spec in specs.items()
    }
    voices = hear_voices(world, rollups, specs, scores, currencies, fixed=fixed)
    return rollups, voices
