"""Derive the rollups of some issues only, from the stored links and a World without most tickets.

An incremental derivation re-computes what a change can move and nothing else. It is used when
every changed record is an account or an issue whose linking fields (an account's domains and
name, an issue's id and key) did not change: no link moves, so the stored links are still the
links, and only the rollups of the issues those records reach change. Those rollups are
computed by the same code as a full derivation's (`compute_rollups`, `hear_voices`) over a
World that holds every record except tickets, plus the tickets of the issues and accounts in
scope: the figures are therefore the ones a full derivation would compute. A weighted score
normalises across all issues, so with one declared any change derives everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from pmsync.sync.links.changes import Change, Scope, link_fingerprint, stored_inputs
from pmsync.sync.links.linker import Link, LinkResult
from pmsync.sync.links.models import RollupSpec
from pmsync.sync.links.rollups import Currencies, Rollup, compute_rollups
from pmsync.sync.links.score_models import ScoreSpec
from pmsync.sync.links.voices import Voices, hear_voices
from pmsync.sync.links.world import Entity, World, ref, split_ref
from pmsync.sync.store.schema import links as links_table
from pmsync.sync.store.schema import records, stream_state
from pmsync.sync.store.store import Store

VALUE_ONLY = ("account", "issue")  # entities whose non-linking changes derive incrementally


def value_only_changes(
    store: Store, changes: Sequence[Change], scores: Mapping[str, ScoreSpec], derived_from: set[str]
) -> Scope | None:
    """The accounts and issues changed (as a Scope), when no change can move a link; else None.

    A new, deleted or revived record, or one whose linking fields changed, returns None.
    """
    relevant = [c for c in changes if c.entity in derived_from]
    if not relevant:
        return Scope()
    if any(c.entity not in VALUE_ONLY for c in relevant):
        return None
    if any(spec.method == "weighted" for spec in scores.values()):
        return None
    current = _current(store, relevant)
    known = _known_inputs(store, current)
    scope = Scope()
    for change in relevant:
        found = current.get((change.connector, change.stream, change.key))
        if found is None or found[0] != change.entity:
            return None  # tombstoned (or its entity changed): links move
        if known.get(change.ref) != link_fingerprint(change.entity, found[1]):
            return None  # new, or its linking fields changed
        (scope.accounts if change.entity == "account" else scope.issues).add(change.ref)
    return scope


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
    found: set[str] = set()
    wanted = sorted(targets)
    for start in range(0, len(wanted), 900):
        found.update(
            connection.execute(
                sa.select(links_table.c.ticket_ref).where(
                    links_table.c.kind == kind,
                    links_table.c.target_ref.in_(wanted[start : start + 900]),
                )
            ).scalars()
        )
    return found


def _issues_of_tickets(connection: sa.Connection, tickets: Iterable[str]) -> set[str]:
    found: set[str] = set()
    wanted = sorted(tickets)
    for start in range(0, len(wanted), 900):
        found.update(
            connection.execute(
                sa.select(links_table.c.target_ref).where(
                    links_table.c.kind == "ticket_issue",
                    links_table.c.ticket_ref.in_(wanted[start : start + 900]),
                )
            ).scalars()
        )
    return found


def scoped_world(
    store: Store, scope: Scope, aliases: Mapping[str, str]
) -> tuple[World, LinkResult]:
    """A World for the scope's figures, and the stored links of its tickets.

    It holds every account, issue, organization, opportunity and survey answer (what pipeline
    and survey figures read, a small share of a store), the tickets the scope's figures read
    (those of its issues and accounts, and its tickets), and of the two large entities only
    what those figures reach: usage of the accounts the tickets link to, and people whose
    e-mail a survey answer gives (how an answer without an account finds one).
    """
    world = World()
    buckets = _buckets(world)
    small = ["account", "issue", "organization", "opportunity", "opportunity_issue"]
    for connector, stream, key, (entity, fields) in store.iter_unified([*small, "survey_response"]):
        buckets[entity][ref(connector, key)] = Entity(
            ref(connector, key), connector, stream, key, fields
        )
    with store.engine.connect() as connection:
        tickets = set(scope.tickets)
        tickets |= _tickets_linked(connection, "ticket_issue", scope.issues)
        tickets |= _tickets_linked(connection, "ticket_account", scope.accounts)
        for ticket in _load_tickets(connection, tickets):
            world.tickets[ticket.ref] = ticket
        result = _stored_links(connection, set(world.tickets))
        asking = {link.target for link in result.account_of.values()}
        _add_where(
            connection,
            world.usage,
            "usage",
            "account_id",
            _usage_ids(world, asking),
            index="ix_records_usage_account",
        )
        emails = {str(s.get("email")).lower() for s in world.surveys.values() if s.get("email")}
        _add_where(
            connection,
            world.people,
            "person",
            "email",
            emails,
            lower=True,
            index="ix_records_person_email",
        )
    world.index()
    for old, current in aliases.items():  # the old keys the last full derivation knew
        issue = world.by_issue_key.get(current.upper())
        if issue is not None:
            world.alias(old, issue)
    return world, result


def _buckets(world: World) -> dict[str, dict[str, Entity]]:
    return {
        "account": world.accounts,
        "issue": world.issues,
        "organization": world.organizations,
        "opportunity": world.opportunities,
        "opportunity_issue": world.opportunity_issues,
        "survey_response": world.surveys,
    }


def _usage_ids(world: World, accounts: set[str]) -> set[str]:
    """The account ids usage of `accounts` is recorded under: the CRM id (and its 15-char
    form) or the key of an analytics organization whose account_id names the account."""
    keys = {world.accounts[a].key for a in accounts if a in world.accounts}
    ids = keys | {k[:15] for k in keys if len(k) == 18}
    for organization in world.organizations.values():
        named = str(organization.get("account_id") or "")
        if named and (named in ids or named[:15] in ids):
            ids.add(organization.key)
    return ids


def _add_where(
    connection: sa.Connection,
    into: dict[str, Entity],
    entity: str,
    field_name: str,
    values: Iterable[str],
    *,
    lower: bool = False,
    index: str | None = None,
) -> None:
    """Live records of `entity` whose unified `field_name` is among `values` (the database
    reads the JSON, so the rest never reaches Python)."""
    wanted: list[Any] = sorted(set(values))
    column: Any = _json_text(connection, field_name)
    if lower:
        column = sa.func.lower(column)
    if connection.dialect.name == "sqlite":  # json_extract keeps a JSON number a number
        wanted += [int(v) for v in wanted if isinstance(v, str) and v.isdigit()]
    for start in range(0, len(wanted), 900):
        query = sa.select(
            records.c.connector, records.c.stream, records.c.key, records.c.unified
        ).where(
            records.c.entity == entity,
            records.c.deleted_at.is_(None),
            column.in_(wanted[start : start + 900]),
        )
        if index:  # SQLite's planner, without statistics, would walk the entity index
            query = query.with_hint(records, f"INDEXED BY {index}", "sqlite")
        for connector, stream, key, unified in connection.execute(query):
            into[ref(connector, key)] = Entity(
                ref(connector, key), connector, stream, key, orjson.loads(unified)
            )


def _json_text(connection: sa.Connection, field_name: str) -> Any:
    """A unified field, written as the indexes of migration 0006 are (so they serve)."""
    assert field_name.isidentifier()  # written into the SQL: a literal, as in the index
    if connection.dialect.name == "postgresql":
        return sa.literal_column(f"(records.unified::jsonb ->> '{field_name}')")
    return sa.literal_column(f"json_extract(records.unified, '$.{field_name}')")


def _load_tickets(connection: sa.Connection, refs: Iterable[str]) -> list[Entity]:
    """Live feedback records by ref (connector:key), looked up by primary key per stream."""
    keys_by_connector: dict[str, list[str]] = {}
    for value in refs:
        connector, key = split_ref(value)
        keys_by_connector.setdefault(connector, []).append(key)
    streams: dict[str, list[str]] = {}
    for connector, stream in connection.execute(
        sa.select(stream_state.c.connector, stream_state.c.stream)
    ):
        streams.setdefault(connector, []).append(stream)
    found: list[Entity] = []
    for connector, keys in keys_by_connector.items():
        keys.sort()
        for start in range(0, len(keys), 900):
            query = sa.select(records.c.stream, records.c.key, records.c.unified).where(
                records.c.connector == connector,
                records.c.key.in_(keys[start : start + 900]),
                records.c.entity == "feedback",
                records.c.deleted_at.is_(None),
            )
            if streams.get(connector):
                query = query.where(records.c.stream.in_(streams[connector]))
            for stream, key, unified in connection.execute(query):
                found.append(
                    Entity(ref(connector, key), connector, stream, key, orjson.loads(unified))
                )
    return found


def _stored_links(connection: sa.Connection, tickets: set[str]) -> LinkResult:
    result = LinkResult()
    wanted = sorted(tickets)
    for start in range(0, len(wanted), 900):
        rows = connection.execute(
            sa.select(links_table).where(links_table.c.ticket_ref.in_(wanted[start : start + 900]))
        )
        for row in rows:
            link = Link(row.kind, row.ticket_ref, row.target_ref, row.rule)
            if row.kind == "ticket_account":
                result.account_of[row.ticket_ref] = link
            else:
                result.issues_of.setdefault(row.ticket_ref, {})[row.target_ref] = link
    return result


def scoped_rollups(
    world: World,
    result: LinkResult,
    issues: set[str],
    rollup_specs: Mapping[str, RollupSpec],
    currencies: Currencies,
    scores: Mapping[str, ScoreSpec],
) -> tuple[dict[str, dict[str, Rollup]], Voices]:
    """The rollups (with the voices' figures and the scores) of `issues`, as a full
    derivation computes them."""
    specs = dict(rollup_specs) or {"customer_demand": RollupSpec()}
    rollups = {
        name: compute_rollups(world, result, spec, currencies, name=name, only=issues)
        for name, spec in specs.items()
    }
    voices = hear_voices(world, rollups, specs, scores, currencies)
    return rollups, voices
