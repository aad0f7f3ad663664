"""Derive links and rollups from the synced records and store only what changed.

The whole World is re-linked in memory each cycle (cheap next to the API calls that fed it), then
diffed against the stored links and rollups: a changed record therefore changes only the links
and the rollups of the issues it affects, and only those reach the store and write-back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog

from pmsync.errors import Problem
from pmsync.sync.links.aliases import KeyLookup, add_aliases
from pmsync.sync.links.linker import Link, Linker, LinkResult, Overrides
from pmsync.sync.links.models import LinkSettings, RollupSpec
from pmsync.sync.links.rollups import Currencies, Rollup, compute_rollups
from pmsync.sync.links.score_models import ScoreSpec
from pmsync.sync.links.settings import CurrencySettings
from pmsync.sync.links.voices import Voices, hear_voices
from pmsync.sync.links.world import World
from pmsync.sync.store.locks import store_lock
from pmsync.sync.store.schema import links as links_table
from pmsync.sync.store.schema import rollups as rollups_table
from pmsync.sync.store.store import Store, content_hash, dumps, utcnow

log = structlog.get_logger("pmsync.links")


@dataclass
class Derived:
    """The result of one derivation: what is linked, the rollups, and what changed."""

    world: World
    links: LinkResult
    rollups: dict[str, dict[str, Rollup]]
    currencies: Currencies
    voices: Voices = field(default_factory=Voices)
    links_added: int = 0
    links_removed: int = 0
    changed_rollups: dict[str, list[str]] = field(default_factory=dict)

    @property
    def problems(self) -> list[Problem]:
        return self.links.problems


def currencies_for(settings: CurrencySettings, world: World) -> Currencies:
    """Rates into the reporting currency: the CRM's (CurrencyType, synced as currency_rate)
    when `from_store` allows, and the configured ones for currencies the CRM lacks.

    Directions differ: a configured rate is the value of one unit of a currency in the reporting
    currency (EUR = 1.08 with USD reporting: 1 EUR is 1.08 USD); a CRM rate is how many units of
    a currency one unit of the corporate currency is worth (EUR 0.925 with a USD corporate
    currency). One unit of X is therefore worth rate(reporting) / rate(X) reporting units, which
    also holds when the reporting currency is not the corporate one.
    """
    rates = {code.upper(): value for code, value in settings.rates.items()}
    if settings.from_store and world.rates:
        reporting_rate = world.rates.get(settings.reporting.upper())
        if reporting_rate:
            rates.update(
                {code: reporting_rate / rate for code, rate in world.rates.items() if rate}
            )
    return Currencies(settings.reporting.upper(), rates)


def derive(
    store: Store,
    link_settings: LinkSettings,
    overrides: Overrides,
    rollup_specs: Mapping[str, RollupSpec],
    currency: CurrencySettings,
    *,
    persist: bool = True,
    scores: Mapping[str, ScoreSpec] | None = None,
    should_stop: Callable[[], bool] | None = None,
    lookups: Mapping[str, KeyLookup] | None = None,
    projects: Sequence[str] = (),
) -> Derived:
    """Link, roll up, hear the other voices, score, and (when `persist`) store the changes.

    `should_stop` cuts a wait for another process's derivation short (Interrupted). `lookups`
    (by issue connector) resolve issue keys tickets name that are no issue's current key, such
    as old keys of moved issues; `projects` are the configured issue projects.
    """
    linker = Linker(link_settings, overrides, projects=projects)
    declared = dict(scores or {})
    if not persist:
        return _derive(
            store, linker, rollup_specs, currency, declared, lookups or {}, persist=False
        )
    with store_lock(store, "derive", should_stop=should_stop):
        return _derive(store, linker, rollup_specs, currency, declared, lookups or {}, persist=True)


def _derive(
    store: Store,
    linker: Linker,
    rollup_specs: Mapping[str, RollupSpec],
    currency: CurrencySettings,
    scores: Mapping[str, ScoreSpec],
    lookups: Mapping[str, KeyLookup],
    *,
    persist: bool,
) -> Derived:
    world = World.load(store)
    world.rates = _crm_rates(store)
    add_aliases(store, world, linker.named_keys(world), lookups)
    result = linker.link(world)
    currencies = currencies_for(currency, world)
    specs = dict(rollup_specs) or {"customer_demand": RollupSpec()}
    rollups = {
        name: compute_rollups(world, result, spec, currencies, name=name)
        for name, spec in specs.items()
    }
    voices = hear_voices(world, rollups, specs, scores, currencies)
    derived = Derived(world, result, rollups, currencies, voices)
    if persist:
        with store.transaction() as connection:
            derived.links_added, derived.links_removed = _store_links(connection, result.links())
            for name, per_issue in rollups.items():
                derived.changed_rollups[name] = _store_rollups(connection, name, per_issue)
        log.info(
            "derived",
            links_added=derived.links_added,
            links_removed=derived.links_removed,
            rollups_changed={k: len(v) for k, v in derived.changed_rollups.items()},
            unresolved=len(result.unresolved),
        )
    return derived


def _crm_rates(store: Store) -> dict[str, float]:
    rates: dict[str, float] = {}
    for _connector, _stream, _key, (_entity, fields) in store.iter_unified(["currency_rate"]):
        if fields.get("code") and fields.get("rate"):
            rates[str(fields["code"]).upper()] = float(fields["rate"])
    return rates


def _store_links(connection: sa.Connection, links: list[Link]) -> tuple[int, int]:
    wanted = {(link.kind, link.ticket, link.target): link.rule for link in links}
    current = {
        (row.kind, row.ticket_ref, row.target_ref): row.rule
        for row in connection.execute(sa.select(links_table))
    }
    now = utcnow()
    added = [k for k in wanted if k not in current]
    removed = [k for k in current if k not in wanted]
    changed_rule = [k for k in wanted if k in current and current[k] != wanted[k]]
    if added:
        connection.execute(
            sa.insert(links_table),
            [
                {
                    "kind": k[0],
                    "ticket_ref": k[1],
                    "target_ref": k[2],
                    "rule": wanted[k],
                    "linked_at": now,
                }
                for k in added
            ],
        )
    for kind, ticket, target in removed:
        connection.execute(
            sa.delete(links_table).where(
                links_table.c.kind == kind,
                links_table.c.ticket_ref == ticket,
                links_table.c.target_ref == target,
            )
        )
    for kind, ticket, target in changed_rule:
        connection.execute(
            sa.update(links_table)
            .where(
                links_table.c.kind == kind,
                links_table.c.ticket_ref == ticket,
                links_table.c.target_ref == target,
            )
            .values(rule=wanted[(kind, ticket, target)])
        )
    return len(added), len(removed)


def _store_rollups(connection: sa.Connection, name: str, per_issue: dict[str, Rollup]) -> list[str]:
    """Upsert rollups whose content changed; return the issues whose rollup changed."""
    current = {
        row.issue_ref: row.content_hash
        for row in connection.execute(
            sa.select(rollups_table.c.issue_ref, rollups_table.c.content_hash).where(
                rollups_table.c.name == name
            )
        )
    }
    now = utcnow()
    changed: list[str] = []
    for issue_ref, rollup in per_issue.items():
        value, provenance = dumps(rollup.value()), dumps(rollup.provenance)
        digest = content_hash(value, provenance)
        if current.get(issue_ref) == digest:
            continue
        changed.append(issue_ref)
        row = {
            "issue_key": rollup.issue_key,
            "value": value,
            "provenance": provenance,
            "content_hash": digest,
            "computed_at": now,
        }
        if issue_ref in current:
            connection.execute(
                sa.update(rollups_table)
                .where(rollups_table.c.name == name, rollups_table.c.issue_ref == issue_ref)
                .values(**row)
            )
        else:
            connection.execute(
                sa.insert(rollups_table).values(name=name, issue_ref=issue_ref, **row)
            )
    gone = set(current) - set(per_issue)
    for issue_ref in gone:  # the issue itself was deleted
        connection.execute(
            sa.delete(rollups_table).where(
                rollups_table.c.name == name, rollups_table.c.issue_ref == issue_ref
            )
        )
        changed.append(issue_ref)
    return changed
